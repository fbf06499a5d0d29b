r"""Acquisition heuristics for active learning (small and separate, in the style of BaaL).

For a galaxy with T MC-dropout samples :math:`\rho_t` and n volunteers, with
:math:`p_t(k) = \mathrm{Binomial}(k \mid n, \rho_t)` and :math:`\bar p = \frac1T\sum_t p_t`:

.. math::

    \text{predictive entropy} &= H[\bar p] = -\sum_{k=0}^{n} \bar p(k)\log\bar p(k) \\
    \text{expected entropy}   &= \frac1T\sum_t H[p_t] \\
    \text{BALD}               &= H[\bar p] - \frac1T\sum_t H[p_t] \;\ge 0

all in nats and summed exactly over k = 0..n. BALD (the mutual information between the votes
and the network weights) is large only where the sampled networks are each confident but
disagree with one another: labelling such a galaxy teaches the model the most (Houlsby et al.
2011; Walmsley et al. 2020). The pool's n is not known before labelling, so callers pass an
expected number of votes per question.

``rho_samples`` is (galaxies, T) or (galaxies, Q, T); ``n`` is a scalar, (galaxies,) or
rho_samples.shape[:-1]; every score has shape rho_samples.shape[:-1]. Work is done in chunks
of rows so memory stays bounded.

Two ways of computing the same numbers: for 1 <= n <= ``RECURRENCE_MAX_N`` the binomial tables
are built by multiplication along k (:func:`_entropies_recurrence`, no exp or log per table
entry); for other n, and for the few galaxies whose BALD is so close to zero that the
recurrence's rounding would matter, the exact log-table path (:func:`_entropies_one_n`) is used.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import special

from zoolib.votes.binomial import broadcast_rows, log_choose, logpmf_table, row_chunks

MI_ROUNDING = 1e-12  # nats: negative BALD scores this small are rounding, set to zero
# rows * T * (n + 1) per chunk (4 MiB tables): large enough that the recurrence's n + 1 vector
# steps per chunk are not dominated by call overhead
MI_CHUNK_ELEMENTS = 2**19
RECURRENCE_MAX_N = 512  # largest n scored by the multiplicative recurrence (beyond: exact path)
_RECURRENCE_BLOCK = 16  # k values per partial sum of the row normalisation
TINY_BASE = 1e-280  # (1 - rho)^n below this: build the row from k = n instead of k = 0
# the recurrence's rounding is a few ulp of n h(rho); galaxies with |BALD| below this many
# times that scale are rescored on the exact path, where BALD keeps its relative accuracy
_RESCORE_ULPS = 1e4


def _entropies_one_n(rho: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Predictive and expected entropy for rows rho (m, T) that all share the vote count n.

    With :math:`\log p_t(k) = \log\binom{n}{k} + k\,\mathrm{logit}\,\rho_t + n\log(1-\rho_t)`
    the whole (m T, n + 1) table of log-probabilities is one matrix product of (m T, 3) by
    (3, n + 1), and :math:`H[p_t] = -\sum_k p_t(k)\log p_t(k)` is summed directly from it.
    (The shortcut :math:`-E_t[\log\binom nk] - n\rho_t\,\mathrm{logit}\,\rho_t - n\log(1-\rho_t)`
    assumes :math:`\sum_k p_t(k) = 1` exactly and multiplies its rounding by :math:`\sim n`.)
    """
    m, t = rho.shape
    if ((rho == 0) | (rho == 1)).any():  # exact 0 or 1: logit is infinite, use the general path
        logp = logpmf_table(rho, np.float64(n), n).reshape(m * t, n + 1)
        np.maximum(logp, -1e300, out=logp)  # p = 0 where log p = -inf, and 0 * log p = 0
    else:
        k = np.arange(n + 1, dtype=np.float64)
        log1m = np.log1p(-rho)
        design = np.stack([np.log(rho) - log1m, n * log1m, np.ones_like(rho)], axis=-1)
        weights = np.stack([k, np.ones_like(k), log_choose(n, k)])  # (3, n + 1)
        logp = design.reshape(m * t, 3) @ weights
    p = np.exp(logp)
    expected = -np.einsum("ik,ik->i", p, logp).reshape(m, t).mean(axis=1)
    pred = special.entr(p.reshape(m, t, n + 1).mean(axis=1)).sum(axis=-1)
    return pred, expected


@lru_cache(maxsize=32)
def _binomial_weights(n: int) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`\binom nk` and :math:`\binom nk\log\binom nk` for k = 0..n, each correctly
    rounded from the exact integer (n <= ``RECURRENCE_MAX_N``, so nothing overflows)."""
    c = [math.comb(n, k) for k in range(n + 1)]
    weights = np.array([c, [x * math.log(x) for x in c]], dtype=np.float64)
    weights.setflags(write=False)
    return weights[0], weights[1]


def _int_power(x: np.ndarray, n: int) -> np.ndarray:
    """x ** n for a whole n >= 1 by repeated squaring (a few multiplications, no pow)."""
    out, square = None, x
    while True:
        if n & 1:
            out = square.copy() if out is None else out * square
        n >>= 1
        if not n:
            return out
        square = square * square


def _entropies_recurrence(rho: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Predictive and expected entropy for rows rho (m, T) sharing 1 <= n <= RECURRENCE_MAX_N.

    Each row's table :math:`v_k = (1-\rho)^n\,(\rho/(1-\rho))^k` (so that
    :math:`p(k) = \binom nk v_k`) is built by one multiplication per entry along k, in a
    (n + 1, T, m) layout where every step is a contiguous vector operation. Rows with
    :math:`(1-\rho)^n` below ``TINY_BASE`` (rho near 1) are built from the other end, with
    rho and 1 - rho exchanged, and reversed. Entries :math:`v_k` that fall below the smallest
    normal double (2.2e-308) have :math:`p(k) < \binom nk\,2.2\times10^{-308} < 10^{-154}`
    for n <= 512 and do not change the entropies. Each row is normalised by its computed
    sum :math:`S = \sum_k \binom nk v_k` (this removes the rounding of :math:`(1-\rho)^n`), and

    .. math:: H[p] = n\,h(\rho) - \frac1S\sum_k \binom nk \log\binom nk\, v_k,\qquad
              h(\rho) = -\rho\log\rho - (1-\rho)\log(1-\rho),

    with :math:`\log(1-\rho)` from :math:`\log` of the rounded :math:`1-\rho` plus its exact
    rounding error. The mixture :math:`\bar p = \frac1T\sum_t p_t` is one weighted sum over
    t and the predictive entropy is summed from it directly.

    Both terms of H are up to :math:`n\log 2`, so the rounding of H is a few ulp of
    :math:`n\,h(\rho)` (up to about 2e-14 at n = 40 per row, less after averaging over T),
    however close :math:`H[\bar p]` and the expected entropy are. So where their difference is
    within ``_RESCORE_ULPS`` ulp of :math:`\max_t n\,h(\rho_t)` of zero the galaxy is rescored
    by :func:`_entropies_one_n`, whose difference is accurate to about 1e-15; galaxies whose
    samples are all equal have expected entropy equal to the predictive one exactly and are
    given it.
    """
    m, t = rho.shape
    c, c_log_c = _binomial_weights(n)
    r = np.ascontiguousarray(rho.T)  # (T, m)
    q = 1.0 - r
    base = _int_power(q, n)
    flip = base < TINY_BASE
    any_flip = bool(flip.any())
    if any_flip:  # rho near 1: exchange rho and 1 - rho (exact, as rho > 1/2) and reverse k
        r, q = np.where(flip, q, r), np.where(flip, r, q)
        base = np.where(flip, _int_power(q, n), base)
    odds = r / q  # q > 0: q == 0 gives base == 0, so such rows were exchanged

    table = np.empty((n + 1, t, m))  # v_k for k = 0..n
    table[0] = base
    for k in range(1, n + 1):
        np.multiply(table[k - 1], odds, out=table[k])

    flat = table.reshape(n + 1, t * m)
    weights = np.stack([c, c_log_c])
    sums = sum(  # (2, T m): S and L, summed in blocks of k so partial sums stay small
        np.einsum(
            "jk,kr->jr", weights[:, k : k + _RECURRENCE_BLOCK], flat[k : k + _RECURRENCE_BLOCK]
        )
        for k in range(0, n + 1, _RECURRENCE_BLOCK)
    )
    inv_s = (1.0 / sums[0]).reshape(t, m)
    if any_flip:
        table = np.where(flip, table[::-1], table)
    mixture = np.einsum("ktm,tm->km", table, inv_s)
    mixture *= (c / t)[:, None]
    pred = -np.einsum("km,km->m", mixture, np.log(np.maximum(mixture, 1e-300)))

    err = (q - 1.0) + r  # q - (1 - rho), exactly
    log_q = np.log(q) - err / q  # log(1 - rho) to about 1 ulp, also for tiny rho
    n_h = -n * (r * np.log(np.maximum(r, 1e-300)) + q * log_q)  # 0 log 0 = 0
    expected = (n_h - sums[1].reshape(t, m) * inv_s).mean(axis=0)

    same = rho.max(axis=1) == rho.min(axis=1)
    expected[same] = pred[same]
    close = np.abs(pred - expected) <= _RESCORE_ULPS * np.finfo(np.float64).eps * n_h.max(axis=0)
    redo = np.flatnonzero(close & ~same)
    if len(redo):
        pred[redo], expected[redo] = _entropies_one_n(rho[redo], n)
    return pred, expected


def entropies(
    rho_samples, n, chunk_elements: int = MI_CHUNK_ELEMENTS, recurrence: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Predictive and expected entropy together (one pass over the binomial tables).

    Accuracy: see :func:`mutual_information`.

    Args:
        rho_samples: (galaxies, T) or (galaxies, Q, T) probabilities.
        n: whole vote counts: a scalar, (galaxies,) per galaxy (shared by its questions), or
            rho_samples.shape[:-1]; other shapes raise ValueError.
        chunk_elements: rows are processed in chunks of about this many table entries.
        recurrence: False uses the exact log-table path for every n (slower; for checks and
            benchmarks of the fast path).

    Returns:
        (predictive_entropy, expected_entropy), each of shape rho_samples.shape[:-1], in nats.
    """
    rho, n_rows, lead = broadcast_rows(rho_samples, n)
    pred = np.empty(len(rho))
    expected = np.empty(len(rho))
    for idx, n_chunk in row_chunks(n_rows, rho.shape[1], chunk_elements):
        if recurrence and 1 <= n_chunk <= RECURRENCE_MAX_N:
            pred[idx], expected[idx] = _entropies_recurrence(rho[idx], n_chunk)
        else:
            pred[idx], expected[idx] = _entropies_one_n(rho[idx], n_chunk)
    return pred.reshape(lead), expected.reshape(lead)


def predictive_entropy(rho_samples, n, chunk_elements: int = MI_CHUNK_ELEMENTS) -> np.ndarray:
    r"""Entropy of the mixture posterior, :math:`H[\frac1T\sum_t \mathrm{Bin}(\cdot|n,\rho_t)]`."""
    return entropies(rho_samples, n, chunk_elements)[0]


def mutual_information(rho_samples, n, chunk_elements: int = MI_CHUNK_ELEMENTS) -> np.ndarray:
    r"""BALD score: predictive entropy minus expected entropy, in nats.

    Args:
        rho_samples: (galaxies, T) or (galaxies, Q, T) probabilities.
        n: whole vote counts: a scalar, (galaxies,) per galaxy, or rho_samples.shape[:-1].

    Returns:
        Array of shape rho_samples.shape[:-1].

    Accuracy (measured against ``scipy.stats.binom``, whose pmf is accurate to a few ulp, and
    45-digit decimal arithmetic): each entropy is within about 1e-15 n nats (3e-15 at n = 40,
    1.3e-14 at n = 200 and 4e-14 at n = 512 on the recurrence path used for
    1 <= n <= ``RECURRENCE_MAX_N``; 3e-13 at n = 1000, 2e-12 at n = 5000, 2e-11 at n = 1e5,
    8e-10 at n = 1e6 on the exact path), and their difference is more accurate still near
    zero: identical samples give :math:`\mathrm{MI} = 0` exactly on the recurrence path and
    :math:`|\mathrm{MI}|` below 1e-14 up to n = 1e6 on the exact path, whose two entropies come
    from one table; galaxies whose recurrence MI is within 2.2e-12 :math:`\max_t n\,h(\rho_t)`
    of zero (at most 6e-11 at n = 40; h is the binary entropy) are rescored on the exact path.
    Mathematically :math:`\mathrm{MI} \ge 0`, so values in [-``MI_ROUNDING``, 0) =
    [-1e-12, 0) are set to zero so that the scores can serve as sampling weights; anything
    more negative would be a bug and is returned unchanged.
    """
    return bald_from_entropies(*entropies(rho_samples, n, chunk_elements))


def bald_from_entropies(predictive: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """BALD = predictive - expected entropy (any equal shapes, e.g. from :func:`entropies`),
    with rounding-level negatives in [-``MI_ROUNDING``, 0) set to zero as in
    :func:`mutual_information`. Use it when both entropies are wanted, to build the binomial
    tables once."""
    mi = np.asarray(predictive, dtype=np.float64) - expected
    mi[(mi < 0) & (mi >= -MI_ROUNDING)] = 0.0
    return mi


def sum_over_questions(scores) -> np.ndarray:
    """Combine per-question scores (galaxies, Q) into one score per galaxy by summing.

    Summing mutual informations treats the questions' votes as independent given the image.
    A 1-d array is returned unchanged.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        return scores
    if scores.ndim != 2:
        raise ValueError(f"scores must be (galaxies,) or (galaxies, Q); got shape {scores.shape}")
    return scores.sum(axis=1)


def select_top(scores, batch_size: int) -> np.ndarray:
    """Positions of the ``batch_size`` highest scores, best first.

    Ties are broken deterministically by position (earlier first), so the same scores always
    give the same selection.

    Args:
        scores: (galaxies,) finite scores.
        batch_size: how many to select, 0 <= batch_size <= galaxies.

    Returns:
        int array (batch_size,) of positions into ``scores``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(
            f"scores must be 1-d (use sum_over_questions first); got shape {scores.shape}"
        )
    if np.isnan(scores).any():
        raise ValueError(
            f"scores contain NaN at position {int(np.flatnonzero(np.isnan(scores))[0])}"
        )
    if not 0 <= batch_size <= len(scores):
        raise ValueError(f"batch_size must be in [0, {len(scores)}], got {batch_size!r}")
    return np.argsort(-scores, kind="stable")[:batch_size]
