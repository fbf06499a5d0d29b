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

``rho_samples`` is (galaxies, T) or (galaxies, Q, T); every score has shape
rho_samples.shape[:-1]. Work is done in chunks of rows so memory stays bounded.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from zoolib.posteriors import CHUNK_ELEMENTS, _chunks, _logpmf, _rows


def _entropies_one_n(rho: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictive and expected entropy for rows rho (m, T) that all share the vote count n.

    With :math:`\\log p_t(k) = \\log\binom{n}{k} + k\\,\\mathrm{logit}\rho_t + n\\log(1-\rho_t)`
    the whole (m, T, n + 1) table is one matrix product, and
    :math:`H[p_t] = -\\sum_k p_t(k)\\log\binom nk - n\rho_t\\mathrm{logit}\rho_t - n\\log(1-\rho_t)`
    needs one matrix-vector product instead of a second pass over the table.
    """
    m, t = rho.shape
    k = np.arange(n + 1, dtype=np.float64)
    log_choose = special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
    edge = (rho == 0) | (rho == 1)
    if edge.any():  # exact 0 or 1: logit is infinite, use the careful general path
        logp = _logpmf(rho, np.float64(n), n)
        np.maximum(logp, -1e300, out=logp)  # p = 0 where log p = -inf, and 0 * log p = 0
        p = np.exp(logp)
        expected = -np.einsum("mtk,mtk->m", p, logp) / t
        return special.entr(p.mean(axis=1)).sum(axis=-1), expected
    log1m = np.log1p(-rho)
    logit = np.log(rho) - log1m
    design = np.stack([logit, n * log1m, np.ones_like(rho)], axis=-1).reshape(m * t, 3)
    weights = np.stack([k, np.ones_like(k), log_choose])  # (3, K)
    p = design @ weights  # log p, (m * T, K)
    np.exp(p, out=p)
    expected_log_choose = (p @ log_choose).reshape(m, t)
    per_sample_entropy = -(expected_log_choose + n * (rho * logit + log1m))
    pred = special.entr(p.reshape(m, t, n + 1).mean(axis=1)).sum(axis=-1)
    return pred, per_sample_entropy.mean(axis=1)


def entropies(
    rho_samples, n, chunk_elements: int = CHUNK_ELEMENTS
) -> tuple[np.ndarray, np.ndarray]:
    """Predictive and expected entropy together (one pass over the binomial tables).

    Args:
        rho_samples: (galaxies, T) or (galaxies, Q, T) probabilities.
        n: whole vote counts, a scalar or broadcastable to rho_samples.shape[:-1].
        chunk_elements: rows are processed in chunks of about this many table entries.

    Returns:
        (predictive_entropy, expected_entropy), each of shape rho_samples.shape[:-1], in nats.
    """
    rho, n_rows, lead = _rows(rho_samples, n)
    pred = np.empty(len(rho))
    expected = np.empty(len(rho))
    for idx, n_chunk in _chunks(n_rows, rho.shape[1], chunk_elements):
        pred[idx], expected[idx] = _entropies_one_n(rho[idx], n_chunk)
    return pred.reshape(lead), expected.reshape(lead)


def predictive_entropy(rho_samples, n, chunk_elements: int = CHUNK_ELEMENTS) -> np.ndarray:
    r"""Entropy of the mixture posterior, :math:`H[\frac1T\sum_t \mathrm{Bin}(\cdot|n,\rho_t)]`."""
    return entropies(rho_samples, n, chunk_elements)[0]


def expected_entropy(rho_samples, n, chunk_elements: int = CHUNK_ELEMENTS) -> np.ndarray:
    r"""Mean per-sample binomial entropy, :math:`\frac1T\sum_t H[\mathrm{Bin}(n,\rho_t)]`."""
    return entropies(rho_samples, n, chunk_elements)[1]


def mutual_information(rho_samples, n, chunk_elements: int = CHUNK_ELEMENTS) -> np.ndarray:
    r"""BALD score: predictive entropy minus expected entropy, in nats.

    Mathematically :math:`\ge 0`; differences of about 1e-15 below zero from rounding are set
    to zero so that the scores can be used as sampling weights.
    """
    pred, expected = entropies(rho_samples, n, chunk_elements)
    return np.maximum(pred - expected, 0.0)


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


def random_scores(n_galaxies: int, seed: int) -> np.ndarray:
    """Uniform(0, 1) scores for the random-acquisition baseline, reproducible for a seed."""
    return np.random.default_rng(seed).random(n_galaxies)


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
