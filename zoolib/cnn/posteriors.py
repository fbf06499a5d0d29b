r"""MC-dropout samples of :math:`\rho` from a Keras model (the maths of what they imply is
:mod:`zoolib.votes.binomial`).

:func:`sample_rho` runs the deterministic trunk once per image and draws the T dropout masks
on the small stochastic head in one call (T full passes only when a trunk layer is stochastic);
:func:`deterministic_rho` is one pass with dropout off. Outputs are float64 :math:`\rho`,
(galaxies, Q, T) or (galaxies, Q). A tree model (a softmax over each question's answers) gives
every answer's probability instead: :func:`sample_outputs` and :func:`deterministic_outputs`
follow what its model card says it predicts.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from zoolib.votes import multinomial

RHO_CLIP = 1e-12  # predicted rho is clipped to [RHO_CLIP, 1 - RHO_CLIP]


def _sampler(model):
    """A compiled function images (B, S, S, C), T -> (logits (B, Q, T), trunk features (B, F);
    F = 0 for a model without a deterministic trunk), cached on the model.

    The function is stored as a plain attribute of the model (``object.__setattr__`` bypasses
    Keras' attribute tracking and saving), so it is freed together with the model; it is
    traced anew when the model's precision (:func:`zoolib.cnn.precision.apply`) has changed.
    """
    import tensorflow as tf

    from zoolib.cnn.models import split_trunk_head
    from zoolib.cnn.precision import policy_of

    policy = policy_of(model)
    cached = getattr(model, "_zoolib_sampler", None)
    if cached is not None and cached[0] == policy:
        return cached[1]
    split = split_trunk_head(model)
    if split is not None:  # trunk once, T dropout masks on the head in one call
        trunk, head = split

        @tf.function(reduce_retracing=True)
        def fn(x, n_samples):
            features = trunk(x, training=False)  # (B, F)
            batch = tf.shape(features)[0]
            tiled = tf.tile(features, [n_samples, 1])  # (T * B, F), sample-major
            logits = head(tiled, training=False)  # (T * B, Q)
            logits = tf.reshape(logits, [n_samples, batch, -1])
            return tf.transpose(logits, [1, 2, 0]), features

    else:  # randomness in the trunk: T full stochastic passes

        @tf.function(reduce_retracing=True)
        def fn(x, n_samples):
            draws = tf.TensorArray(model.output.dtype, size=n_samples)
            for t in tf.range(n_samples):
                draws = draws.write(t, model(x, training=False))
            return tf.transpose(draws.stack(), [1, 2, 0]), tf.zeros([tf.shape(x)[0], 0])

    object.__setattr__(model, "_zoolib_sampler", (policy, fn))
    return fn


def to_rho(logits) -> np.ndarray:
    """sigmoid(logits) in float64, clipped to [RHO_CLIP, 1 - RHO_CLIP]."""
    rho = special.expit(np.asarray(logits, dtype=np.float64))
    return np.clip(rho, RHO_CLIP, 1 - RHO_CLIP, out=rho)


def _batches(images, batch_size: int, progress: bool = False, desc: str = ""):
    """Yield (start, float32 batch) over the first axis of images, reading one batch at a time."""
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="batch")
    for start in starts:
        yield start, np.asarray(images[start : start + batch_size], dtype=np.float32)


def dihedral_views(images: np.ndarray) -> np.ndarray:
    """The 8 flips and 90-degree rotations of (B, S, S, C) images: (8, B, S, S, C), view 0 the
    images themselves, views 0-3 rotations by 0-3 quarter turns, 4-7 the same after a
    left-right mirror. A galaxy has no preferred orientation, so all 8 are equally valid."""
    images = np.asarray(images)
    mirrored = images[:, :, ::-1]
    return np.stack([np.rot90(v, q, axes=(1, 2)) for v in (images, mirrored) for q in range(4)])


FULL_PASS_ROWS = 256  # images per forward pass when T augmented full passes are stacked


def _augmented_logits(model, batch: np.ndarray, n_samples: int, rng) -> np.ndarray:
    """(B, Q, T) logits, sample t of galaxy b drawn on a random one of its 8 views."""
    import tensorflow as tf

    from zoolib.cnn.models import split_trunk_head

    views = dihedral_views(batch)  # (8, B, S, S, C)
    pick = rng.integers(0, 8, size=(n_samples, len(batch)))  # (T, B)
    split = split_trunk_head(model)
    if split is not None:  # trunk once per view, the T dropout masks on the head
        trunk, head = split
        features = trunk(tf.constant(views.reshape((-1,) + batch.shape[1:])), training=False)
        features = features.numpy().reshape(8, len(batch), -1)
        chosen = features[pick, np.arange(len(batch))[None, :]]  # (T, B, F)
        logits = head(tf.constant(chosen.reshape(-1, chosen.shape[-1])), training=False)
        logits = logits.numpy().reshape(n_samples, len(batch), -1)
    else:  # randomness in the trunk: T full passes, each on its own views, stacked into
        # passes of at least a batch (every row draws its own dropout mask)
        view, galaxy = pick.ravel(), np.tile(np.arange(len(batch)), n_samples)  # row t * B + b
        step = max(len(batch), FULL_PASS_ROWS)
        logits = np.concatenate([
            model(tf.constant(views[view[i : i + step], galaxy[i : i + step]]),
                  training=False).numpy()
            for i in range(0, len(view), step)
        ])  # fmt: skip
        logits = logits.reshape(n_samples, len(batch), -1)
    return np.transpose(logits, (1, 2, 0))


def sample_logits(
    model,
    images,
    n_samples: int,
    batch_size: int = 256,
    seed: int | None = None,
    progress: bool = False,
    augment: bool = False,
    with_features: bool = False,
):
    r"""Draw T = ``n_samples`` MC-dropout outputs :math:`x_t` (logits) per galaxy; the
    arguments are :func:`sample_rho`'s, which applies the sigmoid to these. A tree's outputs
    take :func:`zoolib.votes.multinomial.answer_probabilities` (a softmax per question) instead.

    Returns:
        float64 array (galaxies, outputs, T) of the raw outputs; with ``with_features`` also
        the trunk's features float32 (galaxies, F) from the same pass (what
        :func:`trunk_features` gives, without running the trunk twice; not with ``augment``).
    """
    import tensorflow as tf

    from zoolib.cnn.models import reseed

    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples!r}")
    if with_features and augment:
        raise ValueError("with_features gives the features of the images as they are: "
                         "not with augment")
    if seed is not None:
        reseed(model, seed)
    fn = _sampler(model)
    rng = np.random.default_rng(seed)
    out, features = None, []
    for start, batch in _batches(images, batch_size, progress, "MC dropout"):
        if augment:
            logits = _augmented_logits(model, batch, n_samples, rng)
        else:
            logits, feats = fn(tf.constant(batch), tf.constant(n_samples, tf.int32))
            logits = logits.numpy()
            features.append(feats.numpy().astype(np.float32))
        if out is None:
            out = np.empty((len(images),) + logits.shape[1:], dtype=np.float64)
        out[start : start + len(batch)] = logits
    if out is None:
        out = np.empty((0, model.output.shape[-1], n_samples))
    if not with_features:
        return out
    return out, (np.concatenate(features) if features else np.empty((0, 0), np.float32))


def sample_rho(
    model,
    images,
    n_samples: int,
    batch_size: int = 256,
    seed: int | None = None,
    progress: bool = False,
    augment: bool = False,
) -> np.ndarray:
    r"""Draw T = ``n_samples`` MC-dropout predictions :math:`\rho_t = \sigma(x_t)` per galaxy.

    Args:
        model: a model from :func:`zoolib.cnn.models.build_bayesian_cnn` (or any Keras model whose
            output is Q logits; models without a deterministic trunk get T full passes).
        images: (galaxies, S, S, C) array of pixel values 0..255 (a memmap is fine: it is read
            one batch at a time).
        n_samples: T, the number of dropout masks per galaxy.
        batch_size: galaxies per forward pass.
        seed: restart the dropout streams at this seed, making the draws reproducible for the
            same ``batch_size`` (the masks are drawn batch by batch, so another batch size gives
            other, equally valid, draws).
        augment: draw each of the T samples on a random one of the galaxy's 8 flips and
            rotations (:func:`dihedral_views`, chosen with ``numpy.random.default_rng(seed)``),
            as the paper's code did, so the samples also express how the prediction depends
            on orientation. The trunk runs once per view (8 passes), the masks on the head.

    Returns:
        float64 array (galaxies, Q, T). The sigmoid is applied in float64, which is exact to
        rounding for :math:`|x| \lesssim 27.6`; beyond that rho is clipped to
        [``RHO_CLIP``, 1 - ``RHO_CLIP``] = [1e-12, 1 - 1e-12] (``expit(37.0)`` is already 1.0),
        so every rho lies strictly inside (0, 1) and likelihoods of observed votes stay finite.
    """
    return to_rho(sample_logits(model, images, n_samples, batch_size, seed, progress, augment))


def trunk_features(model, images, batch_size: int = 256, views: bool = False) -> np.ndarray:
    """The deterministic trunk's features of every image: float32 (galaxies, F), or with
    ``views`` (8, galaxies, F), one row block per flip or rotation (:func:`dihedral_views`).
    The model must be trunk then head (:func:`zoolib.cnn.models.split_trunk_head`)."""
    from zoolib.cnn.models import split_trunk_head

    split = split_trunk_head(model)
    if split is None:
        raise ValueError("this model is not the paper's trunk then head: no features to cache")
    trunk = split[0]
    parts = []
    for _, batch in _batches(images, batch_size):
        if views:
            stacked = dihedral_views(batch).reshape((-1,) + batch.shape[1:])
            parts.append(trunk(stacked, training=False).numpy().reshape(8, len(batch), -1))
        else:
            parts.append(trunk(batch, training=False).numpy())
    return np.concatenate(parts, axis=1 if views else 0).astype(np.float32)


def sample_outputs(model, card, images, n_samples: int, **kwargs) -> np.ndarray:
    """MC-dropout samples of what ``card`` (:class:`zoolib.cnn.cards.ModelCard`) says the model
    predicts, (galaxies, len(card.outputs()), T): rho per question for a binomial model
    (:func:`sample_rho`), every answer's probability for a tree model (a softmax per question,
    or a Dirichlet-multinomial's expected fractions). ``kwargs`` are :func:`sample_logits`'."""
    if card.likelihood == "binomial":
        return sample_rho(model, images, n_samples, **kwargs)
    logits = sample_logits(model, images, n_samples, **kwargs)
    return _answers(logits, card, axis=-2)


def deterministic_outputs(model, card, images, batch_size: int = 256) -> np.ndarray:
    """:func:`sample_outputs` of one pass with dropout off, (galaxies, len(card.outputs()))."""
    if card.likelihood == "binomial":
        return deterministic_rho(model, images, batch_size)
    return _answers(deterministic_logits(model, images, batch_size), card, axis=-1)


def _answers(outputs, card, axis: int) -> np.ndarray:
    sizes = card.answer_tree().sizes()
    p = multinomial.answer_probabilities(outputs, sizes, axis=axis, likelihood=card.likelihood)
    return np.clip(p, RHO_CLIP, 1 - RHO_CLIP)


def deterministic_rho(model, images, batch_size: int = 256) -> np.ndarray:
    """:func:`deterministic_logits` through the sigmoid, float64, clipped as in
    :func:`sample_rho`: (galaxies, Q)."""
    return to_rho(deterministic_logits(model, images, batch_size))


def deterministic_logits(model, images, batch_size: int = 256) -> np.ndarray:
    r"""One deterministic pass with dropout off: the outputs :math:`x` of the network without
    its MCDropout layers (:func:`deterministic_rho` takes :math:`\rho = \sigma(x)`).

    Keras dropout is inverted (kept units are scaled by 1 / (1 - rate)), so each unit's mean
    over dropout masks is its input, and the network with dropout removed is the one the MC
    samples scatter around. When only affine layers follow the dropout, as in the head of
    :func:`zoolib.cnn.models.build_bayesian_cnn`, the deterministic logits equal the mean of the
    MC-dropout logits over masks exactly.

    Args:
        model: a functional or sequential Keras model (nested sub-models are searched); its
            weights are shared, not copied, and the model itself is left unchanged.
        images: (galaxies, S, S, C) array of pixel values 0..255.
        batch_size: galaxies per forward pass.

    Returns:
        float64 array (galaxies, outputs) of the raw outputs (logits).

    Raises:
        ValueError: if the model cannot be rebuilt without its MCDropout layers (e.g. a
            subclassed model, or dropout hidden inside a custom layer).
    """
    import keras

    from zoolib.cnn.models import MCDropout, mc_dropout_layers

    def share_or_skip(layer):  # same layer objects (so same weights), identity for dropout
        return keras.layers.Identity() if isinstance(layer, MCDropout) else layer

    try:
        plain = keras.models.clone_model(model, clone_function=share_or_skip, recursive=True)
    except ValueError as err:
        raise ValueError(f"cannot remove the dropout layers of this model: {err}") from None
    if mc_dropout_layers(plain):
        raise ValueError("cannot remove the dropout layers of this model: MCDropout is nested")
    def run(batch):
        return np.asarray(plain(batch, training=False), dtype=np.float64)

    parts = [run(batch) for _, batch in _batches(images, batch_size)]
    if not parts:  # no images: one empty pass gives the (0, Q) shape
        parts = [run(np.asarray(images, dtype=np.float32))]
    return np.concatenate(parts)
