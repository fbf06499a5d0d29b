r"""Per-question evaluation metrics for vote-count predictions.

* RMSE of the predicted :math:`\rho` against the observed vote fraction :math:`k/n`.
* Mean negative log-likelihood of the observed votes, in nats per galaxy, either of a point
  prediction :math:`-\log\mathrm{Bin}(k|n,\rho)` or of the MC-dropout posterior
  :math:`-\log\frac1T\sum_t\mathrm{Bin}(k|n,\rho_t)`. The binomial coefficient is included, so
  these are proper log-probabilities comparable across models.

Galaxies with n = 0 for a question (never asked it) are left out of that question's metrics.
Inputs are (galaxies,) or (galaxies, Q); results are scalars or (Q,) arrays.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from zoolib.votes.binomial import as_counts, as_probabilities, mixture_nll


def _checked(rho, k, n, rho_ndim_extra: int = 0):
    rho = as_probabilities(rho, "rho")
    k = as_counts(k, "k")
    n = as_counts(n, "n")
    if k.shape != n.shape or rho.shape[: rho.ndim - rho_ndim_extra] != n.shape:
        raise ValueError(f"shapes of rho {rho.shape}, k {k.shape} and n {n.shape} do not match")
    if np.any(k > n):
        i = tuple(int(j) for j in np.argwhere(k > n)[0])
        raise ValueError(f"k exceeds n at index {i}")
    return rho, k, n


def _masked_mean(values: np.ndarray, asked: np.ndarray) -> np.ndarray:
    total = np.where(asked, values, 0.0).sum(axis=0)
    count = asked.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def rmse(rho, k, n) -> np.ndarray:
    r"""Root-mean-square error :math:`\sqrt{\mathrm{mean}_i(\rho_i - k_i/n_i)^2}` over n > 0.

    ``rho`` is the point prediction (e.g. the mean over MC samples), same shape as k and n.
    NaN for a question no galaxy was asked.
    """
    rho, k, n = _checked(rho, k, n)
    asked = n > 0
    frac = np.divide(k, n, out=np.zeros_like(k), where=asked)
    return np.sqrt(_masked_mean((rho - frac) ** 2, asked))


def mean_nll(rho, k, n) -> np.ndarray:
    r"""Mean of :math:`-\log\mathrm{Binomial}(k|n,\rho)` over galaxies with n > 0 (nats)."""
    rho, k, n = _checked(rho, k, n)
    return _masked_mean(-stats.binom.logpmf(k, n, rho), n > 0)


def mean_posterior_nll(rho_samples, k, n) -> np.ndarray:
    r"""Mean of :math:`-\log\frac1T\sum_t\mathrm{Binomial}(k|n,\rho_t)` over n > 0 (nats).

    ``rho_samples`` has one more (last) axis than k and n: the T MC-dropout samples. The
    computation is :func:`zoolib.votes.binomial.mixture_nll` (which also takes a beta-binomial
    concentration).
    """
    return mixture_nll(rho_samples, k, n)
