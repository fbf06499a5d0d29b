r"""MC-dropout posteriors over vote counts.

Each of T stochastic forward passes gives :math:`\rho_t`; the vote count of a galaxy asked of
:math:`n` volunteers then has the predictive distribution

.. math:: p(k \mid n) = \frac{1}{T}\sum_{t=1}^{T} \mathrm{Binomial}(k \mid n, \rho_t),
          \qquad k = 0, \dots, n,

a mixture of binomials that is wider than any single one when the sampled networks disagree.
Array conventions: ``rho_samples`` has the sample axis last, (galaxies, T) or
(galaxies, Q, T); vote-count axes have length ``n_max + 1``.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np
from scipy import special

CHUNK_ELEMENTS = 2**17  # rows * T * (n + 1) per chunk: 1 MiB arrays stay in cache


def as_counts(n, name: str = "n") -> np.ndarray:
    """Validate whole, non-negative, finite vote counts; return them as float64."""
    arr = np.asarray(n, dtype=np.float64)
    bad = ~np.isfinite(arr) | (arr < 0) | (arr != np.round(arr))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
        value = arr[where] if arr.ndim else arr
        raise ValueError(
            f"{name} must hold whole, non-negative vote counts; got {value!r}"
            + (f" at index {where[0] if len(where) == 1 else where}" if arr.ndim else "")
            + " (pass an expected number of votes rounded to an integer)"
        )
    return arr


def as_probabilities(rho, name: str = "rho_samples") -> np.ndarray:
    """Validate probabilities in [0, 1]; return them as float64."""
    arr = np.asarray(rho, dtype=np.float64)
    bad = ~((arr >= 0) & (arr <= 1))  # also catches NaN
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} must lie in [0, 1]; got {arr[where]!r} at index {where}")
    return arr


def vote_logpmf(rho, n, k_max: int | None = None) -> np.ndarray:
    r"""Binomial log-pmf :math:`\log\mathrm{Binomial}(k \mid n, \rho)` for k = 0..k_max.

    Args:
        rho: probabilities, shape S.
        n: whole vote counts broadcastable to S.
        k_max: length of the count axis minus one; default ``max(n)``.

    Returns:
        float64 array of shape S + (k_max + 1,); ``-inf`` where k > n.
    """
    rho = as_probabilities(rho, "rho")
    n = as_counts(n)
    if k_max is None:
        k_max = int(n.max()) if n.size else 0
    return _logpmf(rho, n, k_max)


def _logpmf(rho: np.ndarray, n: np.ndarray, k_max: int) -> np.ndarray:
    """Unvalidated core of :func:`vote_logpmf` (rho and n float64, n broadcastable to rho)."""
    k = np.arange(k_max + 1, dtype=np.float64)
    n_b = np.asarray(n)[..., None]
    valid = k <= n_b
    n_minus_k = np.where(valid, n_b - k, 0.0)
    log_choose = special.gammaln(n_b + 1) - special.gammaln(k + 1) - special.gammaln(n_minus_k + 1)
    r = rho[..., None]
    if np.any((rho == 0) | (rho == 1)):  # 0 * log 0 = 0 needs xlogy
        out = special.xlogy(k, r) + special.xlog1py(n_minus_k, -r)
    else:  # k log rho + (n - k) log(1 - rho) = k logit(rho) + n log(1 - rho)
        log1m = np.log1p(-rho)
        out = (np.log(rho) - log1m)[..., None] * k
        out += (n * log1m)[..., None] if np.ndim(n) else n * log1m[..., None]
    out += log_choose
    if not valid.all():
        out = np.where(valid, out, -np.inf)
    return out


def vote_pmf(rho, n) -> np.ndarray:
    r"""Binomial pmf over vote counts: shape S + (max(n) + 1,), zero where k > n.

    ``rho`` has shape S; ``n`` is a whole count broadcastable to S.
    """
    return np.exp(vote_logpmf(rho, n))


def _rows(rho_samples, n) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Flatten (..., T) samples to (rows, T) and broadcast n to (rows,)."""
    rho = as_probabilities(rho_samples)
    if rho.ndim < 2:
        raise ValueError(f"rho_samples must be (galaxies, [Q,] T); got shape {rho.shape}")
    lead = rho.shape[:-1]
    n = as_counts(n)
    try:
        n_rows = np.broadcast_to(n, lead).reshape(-1)
    except ValueError:
        raise ValueError(
            f"n of shape {n.shape} does not broadcast to rho_samples' leading shape {lead}"
        ) from None
    return rho.reshape(-1, rho.shape[-1]), n_rows, lead


def _chunks(n_rows: np.ndarray, per_row: int, chunk_elements: int):
    """Yield (row indices, n) chunks of rows that share one vote count n.

    Each chunk holds at most about ``chunk_elements`` = rows * per_row * (n + 1) numbers.
    """
    order = np.argsort(n_rows, kind="stable")
    sorted_n = n_rows[order]
    bounds = np.flatnonzero(np.diff(sorted_n)) + 1
    for group in np.split(order, bounds):
        if not len(group):
            continue
        n = int(n_rows[group[0]])
        step = max(1, chunk_elements // max(1, per_row * (n + 1)))
        for start in range(0, len(group), step):
            yield group[start : start + step], n


def mixture_pmf(rho_samples, n, chunk_elements: int = CHUNK_ELEMENTS) -> np.ndarray:
    r"""Posterior predictive over vote counts, :math:`\frac1T\sum_t\mathrm{Binomial}(k|n,\rho_t)`.

    Args:
        rho_samples: (galaxies, T) or (galaxies, Q, T).
        n: whole vote counts broadcastable to rho_samples.shape[:-1].

    Returns:
        (galaxies, [Q,] max(n) + 1), each row summing to 1 (zeros where k > n).
    """
    rho, n_rows, lead = _rows(rho_samples, n)
    k_max_all = int(n_rows.max()) if n_rows.size else 0
    out = np.zeros((len(rho), k_max_all + 1))
    for idx, n_chunk in _chunks(n_rows, rho.shape[1], chunk_elements):
        p = np.exp(_logpmf(rho[idx], np.float64(n_chunk), n_chunk))
        out[idx, : n_chunk + 1] = p.mean(axis=1)
    return out.reshape(lead + (k_max_all + 1,))


def _quantile_index(cdf: np.ndarray, q: float) -> np.ndarray:
    """Smallest k with cdf[..., k] >= q (the discrete quantile, as scipy's ``ppf``)."""
    return np.argmax(cdf >= q - 1e-12, axis=-1)


def credible_interval(rho_samples, n, level: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Central credible interval [lower, upper] of the mixture posterior over k.

    ``lower`` is the smallest k with :math:`P(K \le k) \ge (1-\mathrm{level})/2` and ``upper``
    the smallest k with :math:`P(K \le k) \ge (1+\mathrm{level})/2` (the definition of
    ``scipy.stats.binom.interval``), so the interval holds at least ``level`` of the mass.

    Returns:
        Two int arrays of shape rho_samples.shape[:-1].
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    cdf = np.cumsum(mixture_pmf(rho_samples, n), axis=-1)
    return _quantile_index(cdf, (1 - level) / 2), _quantile_index(cdf, (1 + level) / 2)


def coverage(rho_samples, k, n, levels: Sequence[float]) -> np.ndarray:
    """Fraction of galaxies whose observed k lies inside each nominal central interval.

    Args:
        rho_samples: (galaxies, T) or (galaxies, Q, T).
        k, n: observed yes votes and totals, shape rho_samples.shape[:-1]; entries with n = 0
            (question not asked) are left out.
        levels: nominal levels in (0, 1).

    Returns:
        (len(levels),) for 2-d samples, (len(levels), Q) for 3-d samples. Because votes are
        discrete the intervals hold at least their nominal mass, so a calibrated model covers
        at least ``level``.
    """
    rho = np.asarray(rho_samples)
    n_arr = as_counts(n)
    k_arr = as_counts(k, "k")
    if k_arr.shape != rho.shape[:-1] or n_arr.shape != rho.shape[:-1]:
        raise ValueError(f"k {k_arr.shape} and n {n_arr.shape} must have shape {rho.shape[:-1]}")
    if np.any(k_arr > n_arr):
        i = tuple(int(j) for j in np.argwhere(k_arr > n_arr)[0])
        raise ValueError(f"k exceeds n at index {i}")
    cdf = np.cumsum(mixture_pmf(rho, n_arr), axis=-1)
    asked = n_arr > 0
    out = []
    for level in levels:
        if not 0 < level < 1:
            raise ValueError(f"levels must be in (0, 1), got {level!r}")
        lower = _quantile_index(cdf, (1 - level) / 2)
        upper = _quantile_index(cdf, (1 + level) / 2)
        inside = (lower <= k_arr) & (k_arr <= upper) & asked
        out.append(inside.sum(axis=0) / asked.sum(axis=0))
    return np.asarray(out, dtype=np.float64)


_SAMPLERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _sampler(model):
    """A compiled function images (B, S, S, C), T -> logits (B, Q, T), cached per model."""
    import tensorflow as tf

    from zoolib.models import split_trunk_head

    fn = _SAMPLERS.get(model)
    if fn is not None:
        return fn
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
            return tf.transpose(logits, [1, 2, 0])

    else:  # randomness in the trunk: T full stochastic passes

        @tf.function(reduce_retracing=True)
        def fn(x, n_samples):
            draws = tf.TensorArray(model.output.dtype, size=n_samples)
            for t in tf.range(n_samples):
                draws = draws.write(t, model(x, training=False))
            return tf.transpose(draws.stack(), [1, 2, 0])

    _SAMPLERS[model] = fn
    return fn


def sample_rho(
    model,
    images,
    n_samples: int,
    batch_size: int = 256,
    seed: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    r"""Draw T = ``n_samples`` MC-dropout predictions :math:`\rho_t = \sigma(x_t)` per galaxy.

    Args:
        model: a model from :func:`zoolib.models.build_bayesian_cnn` (or any Keras model whose
            output is Q logits; models without a deterministic trunk get T full passes).
        images: (galaxies, S, S, C) array of pixel values 0..255 (a memmap is fine: it is read
            one batch at a time).
        n_samples: T, the number of dropout masks per galaxy.
        seed: restart the dropout streams at this seed, making the draws reproducible.

    Returns:
        float64 array (galaxies, Q, T); ``sigmoid`` is applied in float64 so that confident
        predictions stay strictly inside (0, 1).
    """
    import tensorflow as tf

    from zoolib.models import reseed

    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples!r}")
    if seed is not None:
        reseed(model, seed)
    fn = _sampler(model)
    n_gal = len(images)
    out = None
    starts = range(0, n_gal, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="MC dropout", unit="batch")
    for start in starts:
        batch = np.asarray(images[start : start + batch_size], dtype=np.float32)
        logits = fn(tf.constant(batch), tf.constant(n_samples, tf.int32)).numpy()
        if out is None:
            out = np.empty((n_gal,) + logits.shape[1:], dtype=np.float64)
        out[start : start + len(batch)] = special.expit(logits.astype(np.float64))
    if out is None:
        q = model.output.shape[-1]
        out = np.empty((0, q, n_samples))
    return out
