r"""The MC-dropout head on cached features, in numpy: fast enough to retrain every round.

The paper's head is dropout then one dense layer (:func:`zoolib.cnn.models.build_head`). On fixed
trunk features :math:`x \in \mathbb{R}^F` of a galaxy, with a dropout mask
:math:`m \sim \mathrm{Bernoulli}(1 - r)^F` and Q questions:

.. math::

    z = \frac{(m \odot x)\,W}{1 - r} + b, \qquad \rho = \sigma(z), \qquad
    \ell = \sum_q N_q \log(1 + e^{z_q}) - k_q z_q + \frac{\lambda}{2}\lVert W\rVert^2

(the binomial NLL of :mod:`zoolib.cnn.losses` without its constant :math:`\log\binom{N}{k}`).
A tree's head (``sizes``: answers per question) has an output per answer and a softmax over
each question's answers, :math:`p = \mathrm{softmax}(z_q)`, with the multinomial NLL
:math:`-\sum_a k_a \log p_a` and gradient :math:`N p_a - k_a` (notebook 04 on a tree; tested
against scipy's optimiser and finite differences).
Training draws a fresh mask per galaxy and step and takes full-batch Adam steps on the mean of
:math:`\ell`, with gradient :math:`\partial\ell/\partial z = N\sigma(z) - k`; the expected loss
over masks is convex in (W, b), so a head trained from zeros converges to the same place
whatever the labelled set's history. Prediction draws T masks per galaxy: the same MC-dropout
posterior as the Keras head (:func:`sample_rho` equals the Keras layer for the same mask, tested).

Shapes: ``features`` (G, F), or (V, G, F) for V augmented views of each galaxy; ``k`` and ``n``
(G, Q); weights (F, Q) and bias (Q,). :func:`fit` trains H heads at once on H labelled sets of
the same size: features (H, G, F), k and n (H, G, Q), weights (H, F, Q).
Speed on 2 CPU cores (2026-11-30): 300 steps of one head on 544 galaxies x 128 features take
about 20 ms; 30 samples of 3,600 galaxies about 25 ms.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import special

RHO_CLIP = 1e-12  # as zoolib.cnn.posteriors: rho stays strictly inside (0, 1)
CHUNK = 256  # galaxies per sampling chunk: bounds the (chunk, T, F) mask array


@dataclass(frozen=True)
class HeadSettings:
    """How a head is trained: ``steps`` full-batch Adam steps at ``learning_rate``, L2 penalty
    ``l2`` on the weights (per galaxy), dropout ``dropout_rate`` (the pretrained head's 0.5)."""

    dropout_rate: float = 0.5
    steps: int = 500  # notebook 04's defaults, chosen on the validation split (docs)
    learning_rate: float = 0.03
    l2: float = 0.01

    def __post_init__(self):
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")
        if self.steps < 1 or self.learning_rate <= 0 or self.l2 < 0:
            raise ValueError(f"steps >= 1, learning_rate > 0 and l2 >= 0 needed: {asdict(self)}")


def masks(rng: np.random.Generator, shape: tuple[int, ...], rate: float) -> np.ndarray:
    """float32 dropout multipliers: 0 with probability ``rate``, else 1 / (1 - rate): the
    pattern of :func:`keep_bits`, scaled."""
    return (keep_bits(rng, shape, rate) * np.float32(1.0 / (1.0 - rate))).astype(
        np.float32, copy=False
    )


def keep_bits(rng: np.random.Generator, shape: tuple[int, ...], rate: float) -> np.ndarray:
    """The 0/1 (uint8 or bool) dropout pattern: 0 with probability ``rate``; at rate 0.5 drawn
    from random bytes (8 per byte), otherwise from uniform floats. Multiplying features already
    divided by (1 - rate) by these is :func:`masks`' dropout without a float mask array."""
    if rate == 0.0:
        return np.ones(shape, dtype=np.uint8)
    if rate == 0.5:
        size = math.prod(shape)
        bits = np.unpackbits(np.frombuffer(rng.bytes((size + 7) // 8), dtype=np.uint8))
        return bits[:size].reshape(shape)
    return rng.random(shape, dtype=np.float32) >= rate


def initial_bias(k: np.ndarray, n: np.ndarray, sizes=None) -> np.ndarray:
    """(..., Q) logit of each question's pooled vote fraction (with half a vote each way): the
    best constant, where training starts (weights start at zero). With ``sizes`` (a softmax
    head, outputs = answers grouped by question): the log of each answer's pooled share of its
    question's votes (half a vote each), the softmax's best constant."""
    if sizes is None:
        return special.logit((k.sum(axis=-2) + 0.5) / (n.sum(axis=-2) + 1.0))
    share = (k.sum(axis=-2) + 0.5) / (n.sum(axis=-2) + 0.5 * np.repeat(sizes, sizes))
    return np.log(share)


def output_gradient(z, k, n, sizes=None) -> np.ndarray:
    r"""d(loss)/dz per galaxy and output. Sigmoid outputs (``sizes`` None): :math:`N\sigma(z) -
    k`, the binomial NLL's. A softmax per question (``sizes``: answers per question, outputs
    grouped in that order; ``n`` each answer's question total N): :math:`N p_a - k_a`, the
    multinomial NLL's :math:`-\sum_a k_a \log p_a` with :math:`p = \mathrm{softmax}(z)` over the
    question's answers."""
    if sizes is None:
        return n * special.expit(z) - k
    edges = np.cumsum(sizes)[:-1]
    p = np.concatenate([special.softmax(part, axis=-1) for part in np.split(z, edges, axis=-1)],
                       axis=-1)  # fmt: skip
    return n * p - k


def fit(features, k, n, settings: HeadSettings, rng: np.random.Generator, weights=None,
        sizes=None):  # fmt: skip
    """Train heads from zero weights: returns (weights (H, F, Q), bias (H, Q)) in float64.

    Args:
        features: (H, G, F) trunk features of each head's G labelled galaxies (or (G, F) for one
            head, then the results are (F, Q) and (Q,)).
        k, n: (H, G, Q) or (G, Q) yes votes and volunteers per question (N = 0: no answer).
        settings: steps, learning rate, L2 and dropout.
        rng: the stream of dropout masks.
        weights: (H, G) or (G,) per-galaxy loss weights (LURE,
        :func:`zoolib.active.loop.lure_weights`):
            the loss becomes the weighted mean (1/G) sum_g v_g l_g; None: all 1.
        sizes: None (one sigmoid output per question, the paper's head), or the answers per
            question of a softmax head: then Q is every answer, k each answer's votes and n its
            question's total (:meth:`zoolib.votes.trees.Tree.answer_counts`), and the loss the
            multinomial NLL (:func:`output_gradient`).
    """
    x = np.asarray(features, dtype=np.float32)
    single = x.ndim == 2
    if single:
        x, k, n = x[None], np.asarray(k)[None], np.asarray(n)[None]
    k, n = np.asarray(k, dtype=np.float32), np.asarray(n, dtype=np.float32)
    if x.ndim != 3 or k.shape != n.shape or k.shape[:2] != x.shape[:2]:
        raise ValueError(f"features (H, G, F) and k, n (H, G, Q) needed; got {x.shape}, {k.shape}")
    heads, galaxies, n_features = x.shape
    v = None if weights is None else np.asarray(weights, np.float32).reshape(heads, galaxies, 1)
    if sizes is not None and sum(sizes) != k.shape[-1]:
        raise ValueError(f"sizes {list(sizes)} do not add up to the {k.shape[-1]} outputs")
    # one array for every parameter, the bias as row F, so that Adam's element-wise update is
    # one set of numpy calls (the same float32 arithmetic as updating w and b apart)
    params = np.zeros((heads, n_features + 1, k.shape[-1]), dtype=np.float32)
    w, b = params[:, :n_features], params[:, n_features]
    b[...] = initial_bias(k, n, sizes)
    grad, first, second = (np.zeros_like(params) for _ in range(3))
    grad_w, grad_b = grad[:, :n_features], grad[:, n_features]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    scaled = x * np.float32(1.0 / (1.0 - settings.dropout_rate))  # exact at rate 0.5: x * 2
    xm = np.empty_like(x)
    for step in range(1, settings.steps + 1):
        np.multiply(scaled, keep_bits(rng, x.shape, settings.dropout_rate), out=xm)
        z = xm @ w
        z += b[:, None, :]
        dz = output_gradient(z, k, n, sizes)
        dz /= galaxies  # d(mean loss)/dz
        if v is not None:
            dz *= v  # d(weighted mean loss)/dz
        np.matmul(np.swapaxes(xm, 1, 2), dz, out=grad_w)
        grad_w += settings.l2 * w
        dz.sum(axis=1, out=grad_b)
        first *= beta1
        first += (1 - beta1) * grad
        second *= beta2
        second += (1 - beta2) * grad * grad
        lr = settings.learning_rate * np.sqrt(1 - beta2**step) / (1 - beta1**step)
        params -= lr * first / (np.sqrt(second) + eps)
    w, b = w.astype(np.float64), b.astype(np.float64)
    return (w[0], b[0]) if single else (w, b)


def mean_loss(features, k, n, weights, bias, sizes=None) -> float:
    """Mean over galaxies of the head's loss without dropout (the deterministic network), for
    convergence checks: sum over questions of N log(1 + e^z) - k z (with ``sizes``: minus the
    votes times the log softmax of each question's answers)."""
    z = np.asarray(features, dtype=np.float64) @ weights + bias
    if sizes is None:
        return float(np.mean(np.sum(n * np.logaddexp(0, z) - k * z, axis=-1)))
    edges = np.cumsum(sizes)[:-1]
    log_p = np.concatenate([special.log_softmax(part, axis=-1)
                            for part in np.split(z, edges, axis=-1)], axis=-1)  # fmt: skip
    return float(np.mean(-np.sum(k * log_p, axis=-1)))


def sample_logits(features, weights, bias, n_samples: int, rate: float, rng) -> np.ndarray:
    """(G, Q, T) logits of T dropout masks per galaxy. With (V, G, F) features each sample t
    of galaxy g uses a random one of its V views (chosen from ``rng``, before the masks)."""
    x = np.asarray(features, dtype=np.float32)
    views = x.ndim == 3
    galaxies = x.shape[-2]
    pick = rng.integers(0, x.shape[0], size=(galaxies, n_samples)) if views else None
    w = np.asarray(weights, dtype=np.float32)
    out = np.empty((galaxies, w.shape[-1], n_samples), dtype=np.float64)
    for start in range(0, galaxies, CHUNK):
        rows = np.arange(start, min(start + CHUNK, galaxies))
        if views:
            chosen = x[pick[rows], rows[:, None]]  # (chunk, T, F)
        else:
            chosen = np.broadcast_to(x[rows, None, :], (len(rows), n_samples, x.shape[-1]))
        z = (chosen * masks(rng, chosen.shape, rate)) @ w  # (chunk, T, Q)
        out[rows] = np.swapaxes(z, 1, 2) + np.asarray(bias, dtype=np.float64)[:, None]
    return out


def sample_rho(features, weights, bias, n_samples: int, rate: float, rng) -> np.ndarray:
    """(G, Q, T) MC-dropout samples of rho, float64, clipped to [RHO_CLIP, 1 - RHO_CLIP]."""
    rho = special.expit(sample_logits(features, weights, bias, n_samples, rate, rng))
    return np.clip(rho, RHO_CLIP, 1 - RHO_CLIP, out=rho)


def sample_probabilities(features, weights, bias, n_samples: int, rate: float, rng,
                         sizes=None) -> np.ndarray:  # fmt: skip
    """(G, outputs, T) MC-dropout samples: rho per question (:func:`sample_rho`) or, with
    ``sizes``, each answer's probability, a softmax over its question's answers (clipped
    alike)."""
    if sizes is None:
        return sample_rho(features, weights, bias, n_samples, rate, rng)
    from zoolib.votes import multinomial

    logits = sample_logits(features, weights, bias, n_samples, rate, rng)
    p = multinomial.answer_probabilities(logits, list(sizes))
    return np.clip(p, RHO_CLIP, 1 - RHO_CLIP, out=p)


def sample_rho_shared(features, weights, bias, n_samples: int, rate: float, rng) -> np.ndarray:
    """(G, Q, T) MC-dropout samples of rho in which sample t uses one dropout mask for every
    galaxy: T whole networks, so the samples of different galaxies are jointly distributed
    (what target-aware scores need, :mod:`zoolib.active.targeted`). Clipped as
    :func:`sample_rho`."""
    x = np.asarray(features, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float32)
    thinned = masks(rng, (n_samples, x.shape[-1]), rate)[:, :, None] * w  # (T, F, Q)
    z = np.einsum("gf,tfq->gqt", x, thinned).astype(np.float64)
    rho = special.expit(z + np.asarray(bias, dtype=np.float64)[:, None])
    return np.clip(rho, RHO_CLIP, 1 - RHO_CLIP, out=rho)


def keras_head_weights(head) -> tuple[np.ndarray, np.ndarray]:
    """(weights (F, Q), bias (Q,)) of a Keras head from :func:`zoolib.cnn.models.build_head`."""
    kernel, bias = head.get_layer("logits").get_weights()
    return np.asarray(kernel, dtype=np.float64), np.asarray(bias, dtype=np.float64)


def can_fit_model_head(card) -> bool:
    """Whether :func:`fit_model_head` can fit this card's outputs: a binomial model, or a
    multinomial tree whose questions all have two answers."""
    if card.likelihood == "binomial":
        return True
    return card.likelihood == "multinomial" and set(card.answer_tree().sizes()) == {2}


def fit_model_head(model, card, images, catalog, settings: HeadSettings = HeadSettings(),
                   seed: int = 0):  # fmt: skip
    r"""Notebook 02's frozen regime: fit a zoolib CNN's head with :func:`fit` on its frozen
    trunk's features of ``images``, from the votes ``card`` reads in ``catalog``; returns
    ``model`` with the head's weights set (the trunk untouched).

    A binomial card fits each question's output. A multinomial tree card whose questions all
    have two answers fits each question's first answer and leaves the second at zero weight and
    bias, so the softmax over the pair is :math:`\sigma(z_{first})`, exactly the fitted head.
    Other cards (more answers, Dirichlet concentrations) are refused, naming the fix.
    """
    from zoolib.cnn import models, posteriors

    sizes = card.answer_tree().sizes()
    if not can_fit_model_head(card):
        raise ValueError(
            f"regime 'frozen' fits yes/no questions (binomial, or a multinomial tree of "
            f"two-answer questions); this model is {card.likelihood} with {sizes} answers: use "
            "regime 'fine_tune'"
        )
    parts = models.split_trunk_head(model)
    if parts is None or parts[1].output_shape[-1] != len(card.outputs()):
        raise ValueError(f"the model is not the paper's CNN with {len(card.outputs())} outputs "
                         f"({card.outputs()}), as the card says")  # fmt: skip
    head = parts[1]
    rate = head.get_layer("mc_dropout").rate  # the model's own, whatever settings say
    settings = replace(settings, dropout_rate=float(rate))
    k, n = card.counts(catalog)  # (G, outputs)
    fitted = np.arange(k.shape[1])
    if card.likelihood != "binomial":
        fitted = np.cumsum([0, *sizes[:-1]])  # each question's first answer
    features = posteriors.trunk_features(model, images)
    w, b = fit(features, k[:, fitted], n[:, fitted], settings, np.random.default_rng(seed))
    kernel, bias = (np.zeros_like(v) for v in head.get_layer("logits").get_weights())
    kernel[:, fitted], bias[fitted] = w, b
    head.get_layer("logits").set_weights([kernel, bias])
    return model
