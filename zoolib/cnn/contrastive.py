r"""A trunk that knows real galaxies: contrastive (SimCLR) and multi-task training on real images.

The paper's CNN learned galaxies from zoo's simulation; on a label it never saw (rings) its
features are no better than random convolutions (``docs/representations.md``). This module
trains the trunk on real images, labelled or not, with two losses summed (either may be off):

* **Contrastive (SimCLR; Chen et al. 2020; for galaxies Hayat et al. 2021).** Each image
  :math:`x_i` of a batch of B gives two views :math:`x_i', x_i''` (:func:`views`: the 8
  flips and rotations, a small zoom-crop, brightness jitter, a PSF-like Gaussian blur and
  Gaussian noise: what an observation may change, never the morphology). The trunk and a small
  projection MLP map each view to :math:`z`, normalised to unit length. With the 2B vectors
  and :math:`s_{ij} = z_i \cdot z_j / \tau`, the NT-Xent loss (:func:`nt_xent`) is

  .. math:: \mathcal{L}_c = \frac{1}{2B} \sum_{i=1}^{2B}
            -\log \frac{\exp s_{i,p(i)}}{\sum_{j \ne i} \exp s_{ij}},

  :math:`p(i)` being the other view of the same galaxy: each view must pick its twin out of
  the 2B - 1 others.
* **Multi-task supervised** (Zoobot's "GZ Evo" idea at this scale). The paper's head (MC
  dropout, then one logit per task) on the first view's features, trained on the binomial
  likelihood of zoo's loss (:func:`zoolib.cnn.losses.binomial_nll`) for every task a galaxy has
  a label for: votes (G, Q, 2) of (k, N), N = 0 where a galaxy has no label for a task (the
  loss and gradient are then zero). Weights scale (k, N) together, which scales a galaxy's
  log-likelihood (so the caller can weight classes equally).

.. math:: \mathcal{L} = w_c \mathcal{L}_c + w_s \frac{1}{B}\sum_i \sum_q
          \mathrm{NLL}(k_{iq}, N_{iq}; \rho_{iq})

Adam with a cosine-decayed learning rate, fixed epochs (no early stopping: the quality of a
representation is measured downstream, by :mod:`zoolib.cnn.probes`). Shapes: images
(G, S, S, C) uint8 or float 0..255; votes (G, Q, 2) float. Measured results:
``docs/representations.md``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from zoolib.cnn import losses, models
from zoolib.cnn import precision as zprecision
from zoolib.data import pipeline


@dataclass(frozen=True)
class Settings:
    """How :func:`train` trains; the defaults made the shipped real trunk."""

    epochs: int = 12
    batch_size: int = 256
    learning_rate: float = 1e-3
    temperature: float = 0.2
    projection_units: int = 64
    contrastive_weight: float = 1.0  # 0 turns SimCLR off (multi-task only)
    supervised_weight: float = 1.0  # 0 turns the labels off (SimCLR only)
    noise: float = 8.0  # largest Gaussian noise sigma, on the 0..255 scale
    blur: float = 1.0  # largest Gaussian PSF sigma, in pixels (at most 1: a 5 x 5 kernel)
    dropout_rate: float = 0.5
    seed: int = 0
    precision: str = "auto"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "projection_units"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (a view needs others to be told from)")
        for name in ("learning_rate", "temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("contrastive_weight", "supervised_weight", "noise", "blur"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.blur > 1.0:
            raise ValueError(f"blur must be <= 1 px (the PSF kernel is 5 x 5), got {self.blur!r}")
        if self.contrastive_weight == 0 and self.supervised_weight == 0:
            raise ValueError("contrastive_weight and supervised_weight are both 0: "
                             "nothing to learn")


def balance(votes) -> np.ndarray:
    """Votes (G, Q, 2) scaled so that, for each task q, its unanimous "yes" rows and its
    unanimous "no" rows weigh the same in total (each set's (k, N) times total / (2 x its
    size)); other rows, N = 0 rows and tasks lacking either class are left as they are."""
    votes = np.array(votes, np.float32)
    for q in range(votes.shape[1]):
        k, n = votes[:, q, 0], votes[:, q, 1]
        yes, no = (n > 0) & (k == n), (n > 0) & (k == 0)
        if yes.any() and no.any():
            total = yes.sum() + no.sum()
            for rows in (yes, no):
                votes[rows, q] *= total / (2 * rows.sum())
    return votes


def blur(images, sigmas, radius: int = 2):
    """Each image blurred by a Gaussian PSF of its own sigma (pixels; ~0 leaves it unchanged).

    images float (B, S, S, C); sigmas (B,); kernel (2 radius + 1)^2, normalised to sum 1.
    """
    b, c = tf.shape(images)[0], tf.shape(images)[3]
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    g = tf.exp(-0.5 * (offsets[None, :] / tf.maximum(sigmas, 1e-3)[:, None]) ** 2)  # (B, K)
    g = g / tf.reduce_sum(g, axis=1, keepdims=True)
    kernel = g[:, :, None] * g[:, None, :]  # (B, K, K), separable
    kernel = tf.repeat(kernel, c, axis=0)  # (B * C, K, K): image-major, like the channels below
    kernel = tf.transpose(kernel, [1, 2, 0])[:, :, :, None]  # (K, K, B * C, 1)
    stacked = tf.transpose(images, [1, 2, 0, 3])  # (S, S, B, C)
    stacked = tf.reshape(stacked, [1, tf.shape(images)[1], tf.shape(images)[2], b * c])
    out = tf.nn.depthwise_conv2d(stacked, kernel, [1, 1, 1, 1], "SAME")
    out = tf.reshape(out, [tf.shape(images)[1], tf.shape(images)[2], b, c])
    return tf.transpose(out, [2, 0, 1, 3])


def views(images, seed, noise: float = 8.0, psf: float = 1.0):
    """One random view of each image: :func:`zoolib.data.pipeline.augment` (flips, rotations,
    zoom, brightness), then a Gaussian PSF of sigma ~ U(0, ``psf``) px and Gaussian noise of
    sigma ~ U(0, ``noise``), each drawn per image. float32 (B, S, S, C) 0..255 in and out;
    ``seed`` a shape-(2,) integer tensor (stateless: the same seed gives the same view)."""
    images = tf.cast(images, tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    images = pipeline.augment(images, seeds[0])
    b = tf.shape(images)[0]
    if psf > 0:
        images = blur(images, tf.random.stateless_uniform([b], seeds[1], 0.0, psf))
    if noise > 0:
        sigma = tf.random.stateless_uniform([b, 1, 1, 1], seeds[2], 0.0, noise)
        images = images + sigma * tf.random.stateless_normal(tf.shape(images), seeds[3])
    return tf.clip_by_value(images, 0.0, 255.0)


def nt_xent(z1, z2, temperature: float):
    """The NT-Xent loss of paired projections z1, z2 (B, D) (row i of each is one galaxy)."""
    z = tf.math.l2_normalize(tf.cast(tf.concat([z1, z2], axis=0), tf.float32), axis=1)
    n = tf.shape(z)[0]
    half = n // 2
    sim = tf.matmul(z, z, transpose_b=True) / temperature
    sim = sim - 1e9 * tf.eye(n)  # a view is never its own candidate
    twin = tf.concat([tf.range(half, n), tf.range(0, half)], axis=0)
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=twin, logits=sim)
    )


def build_projection(n_features: int, units: int, seed: int | None = None) -> keras.Model:
    """SimCLR's projection MLP: features -> dense (ReLU) -> ``units``; discarded after training."""
    init = keras.initializers.GlorotUniform(seed)
    inputs = keras.Input((n_features,), name="features")
    x = layers.Dense(n_features, activation="relu", kernel_initializer=init, name="proj1")(inputs)
    out = layers.Dense(units, kernel_initializer=init, name="proj2")(x)
    return keras.Model(inputs, out, name="projection")


def train(trunk: keras.Model, images, votes, settings: Settings = Settings(),
          log=print) -> tuple[keras.Model, dict]:  # fmt: skip
    """Train ``trunk`` (in place) with :data:`Settings`' losses on ``images`` (G, S, S, C) and
    ``votes`` (G, Q, 2) (all N = 0 for unlabelled galaxies; Q may be 0 with supervised_weight 0).

    Returns (the head: features -> Q logits, with MC dropout, trained on the labels; history
    ``{"loss", "contrastive", "supervised", "seconds"}`` per epoch). Batches are drawn without
    replacement, the last incomplete one dropped (an epoch sees ``G // batch_size`` batches).
    """
    images, votes = np.asarray(images), np.asarray(votes, np.float32)
    if votes.ndim != 3 or votes.shape[0] != len(images) or votes.shape[2] != 2:
        raise ValueError(f"votes must be (G={len(images)}, Q, 2), got {votes.shape}")
    if len(images) < settings.batch_size:
        raise ValueError(f"{len(images)} images are fewer than batch_size={settings.batch_size}")
    policy = zprecision.choose(settings.precision, "train").policy
    n_features = trunk.output_shape[-1]
    keras.utils.set_random_seed(settings.seed)
    head = models.build_head(n_features, max(votes.shape[1], 1), settings.dropout_rate,
                             seed=settings.seed)  # fmt: skip
    projection = build_projection(n_features, settings.projection_units, settings.seed)
    for part in (trunk, head, projection):
        zprecision.apply(part, policy)
    steps = len(images) // settings.batch_size
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate,
                                                      settings.epochs * steps)  # fmt: skip
    optimizer = keras.optimizers.Adam(schedule)
    variables = trunk.trainable_variables + head.trainable_variables
    if settings.contrastive_weight > 0:
        variables += projection.trainable_variables
    s = settings

    @tf.function
    def step(batch, counts, seed):
        seeds = tf.random.experimental.stateless_split(seed, 2)
        v1 = views(batch, seeds[0], s.noise, s.blur)
        b = tf.shape(batch)[0]
        with tf.GradientTape() as tape:
            if s.contrastive_weight > 0:  # two views; without SimCLR one is enough
                v2 = views(batch, seeds[1], s.noise, s.blur)
                features = trunk(tf.concat([v1, v2], axis=0), training=True)
                z = tf.cast(projection(features, training=True), tf.float32)
                contrastive = nt_xent(z[:b], z[b:], s.temperature)
            else:
                features, contrastive = trunk(v1, training=True), tf.constant(0.0)
            logits = tf.cast(head(features[:b], training=True), tf.float32)
            logits = logits[:, : tf.shape(counts)[1]]
            nll = losses.binomial_nll(counts[..., 0], counts[..., 1], logits)
            supervised = tf.reduce_mean(tf.reduce_sum(nll, axis=1))
            loss = s.contrastive_weight * contrastive + s.supervised_weight * supervised
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss, contrastive, supervised

    n_views = 2 if settings.contrastive_weight > 0 else 1
    rng = np.random.default_rng(settings.seed)
    history = {"loss": [], "contrastive": [], "supervised": [], "seconds": []}
    for epoch in range(settings.epochs):
        start, totals = time.perf_counter(), np.zeros(3)
        order = rng.permutation(len(images))
        for i in range(steps):
            rows = np.sort(order[i * s.batch_size : (i + 1) * s.batch_size])
            seed = tf.constant([settings.seed, epoch * steps + i], tf.int64)
            out = step(tf.constant(images[rows], tf.float32), tf.constant(votes[rows]), seed)
            totals += [float(v) for v in out]
        for key, value in zip(("loss", "contrastive", "supervised"), totals / steps, strict=True):
            history[key].append(round(float(value), 4))
        elapsed = time.perf_counter() - start
        history["seconds"].append(round(elapsed, 1))
        log(f"epoch {epoch + 1}/{settings.epochs}: loss {history['loss'][-1]:.4f} "
            f"(contrastive {history['contrastive'][-1]:.4f}, supervised "
            f"{history['supervised'][-1]:.4f}), {history['seconds'][-1]:.0f} s, "
            f"{n_views * steps * s.batch_size / elapsed:.0f} views/s")  # fmt: skip
    for part in (trunk, head):
        zprecision.apply(part, "float32")
    return head, history
