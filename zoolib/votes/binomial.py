r"""Binomial maths of vote counts, numpy only: likelihood tables, mixtures, intervals, coverage.

Each of T stochastic forward passes gives :math:`\rho_t`; the vote count of a galaxy asked of
:math:`n` volunteers then has the predictive distribution

.. math:: p(k \mid n) = \frac{1}{T}\sum_{t=1}^{T} \mathrm{Binomial}(k \mid n, \rho_t),
          \qquad k = 0, \dots, n,

a mixture of binomials that is wider than any single one when the sampled networks disagree.

**Overdispersion.** Volunteers also disagree about galaxies whose image shows the same thing
(what the simulation calls ambiguity), so observed votes scatter more than any binomial around
even a perfect :math:`\rho`. With a ``concentration`` :math:`\phi` each binomial becomes a
beta-binomial of mean :math:`\rho_t` (:math:`a = \rho_t\phi`, :math:`b = (1-\rho_t)\phi`,
variance inflated by :math:`(n + \phi)/(1 + \phi)`; :math:`\phi \to \infty` is the binomial),
the vote model of Zoobot's Dirichlet-multinomial loss (Walmsley et al. 2022) for one question.
:func:`fit_concentration` picks :math:`\phi` per question by maximum likelihood on held-out
galaxies (the validation split), so the model's :math:`\rho` samples are left untouched.

Array conventions: ``rho_samples`` has the sample axis last, (galaxies, T) or
(galaxies, Q, T); vote counts ``n`` are left-aligned with it: a scalar, (galaxies,) per galaxy
(shared by its questions) or rho_samples.shape[:-1]; vote-count axes have length ``n_max + 1``.
Drawing the samples from a Keras model is :mod:`zoolib.cnn.posteriors`; scoring them for active
learning is :mod:`zoolib.active.acquisition`, which builds on the tables here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special

from zoolib.votes.schema import count_problems

CHUNK_ELEMENTS = 2**17  # rows * T * (n + 1) per chunk: 1 MiB arrays stay in cache
_RTOL = 1e-12  # a tail mass within this relative distance of its target counts as reaching it


def as_counts(n, name: str = "n") -> np.ndarray:
    """Validate whole, non-negative, finite vote counts; return them as float64."""
    arr = np.asarray(n, dtype=np.float64)
    bad = np.logical_or.reduce([mask for mask, _ in count_problems(arr)])
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


def _stirling_error(m: np.ndarray) -> np.ndarray:
    r""":math:`\log m! - [(m + \tfrac12)\log m - m + \tfrac12\log 2\pi]` for whole m >= 1.

    Directly for m <= 15, else by its asymptotic series (truncation error < 1e-16).
    """
    small = m <= 15
    ms, ml = np.where(small, m, 1.0), np.where(small, 16.0, m)
    direct = special.gammaln(ms + 1) - (ms + 0.5) * np.log(ms) + ms - 0.5 * np.log(2 * np.pi)
    i2 = 1.0 / ml**2
    series = (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - i2 / 1188) * i2) * i2) * i2) / ml
    return np.where(small, direct, series)


def log_choose(n, k) -> np.ndarray:
    r""":math:`\log\binom nk` for whole 0 <= k <= n (arrays broadcast; 0 where k < 0 or k > n).

    With :math:`j = \min(k, n - k) > 0` and Stirling's formula with its error term :math:`s`,

    .. math:: \log\binom nk = -j\log\tfrac jn - (n-j)\log(1-\tfrac jn)
              + \tfrac12\log\frac{n}{2\pi j(n-j)} + s(n) - s(j) - s(n-j),

    whose large terms are all positive, so no digits cancel: the error is about 2e-16 times
    the value (measured 5e-15 at n = 40, 2e-13 at n = 5000, 1.2e-10 at n = 1e6), against up to
    10 times more for ``gammaln(n+1) - gammaln(k+1) - gammaln(n-k+1)`` (or ``betaln``).
    """
    n, k = np.asarray(n, dtype=np.float64), np.asarray(k, dtype=np.float64)
    j = np.minimum(k, n - k)
    inner = j > 0
    j, n = np.where(inner, j, 1.0), np.where(inner, n, 2.0)
    x = j / n
    out = (
        -j * np.log(x)
        - (n - j) * np.log1p(-x)
        + 0.5 * np.log(n / (2 * np.pi * j * (n - j)))
        + _stirling_error(n)
        - _stirling_error(j)
        - _stirling_error(n - j)
    )
    return np.where(inner, out, 0.0)


def vote_logpmf(rho, n, k_max: int | None = None) -> np.ndarray:
    r"""Binomial log-pmf :math:`\log\mathrm{Binomial}(k \mid n, \rho)` for k = 0..k_max.

    Args:
        rho: probabilities; ``rho`` and ``n`` broadcast together to a shape S.
        n: whole vote counts.
        k_max: length of the count axis minus one; default ``max(n)``.

    Returns:
        float64 array of shape S + (k_max + 1,); ``-inf`` where k > n.
    """
    rho, n = np.broadcast_arrays(as_probabilities(rho, "rho"), as_counts(n))
    if k_max is None:
        k_max = int(n.max()) if n.size else 0
    return logpmf_table(rho, n, k_max)


def logpmf_table(rho: np.ndarray, n, k_max: int) -> np.ndarray:
    r"""Unvalidated core of :func:`vote_logpmf`: rho float64 of shape S, n of shape S or scalar.

    :math:`\log\binom nk + k\,\mathrm{logit}\,\rho + n\log(1-\rho)`, shape S + (k_max + 1,).
    """
    k = np.arange(k_max + 1, dtype=np.float64)
    n_b = np.asarray(n, dtype=np.float64)[..., None]
    valid = k <= n_b
    r = rho[..., None]
    if np.any((rho == 0) | (rho == 1)):  # 0 * log 0 = 0 needs xlogy
        out = special.xlogy(k, r) + special.xlog1py(np.where(valid, n_b - k, 0.0), -r)
    else:  # k log rho + (n - k) log(1 - rho) = k logit(rho) + n log(1 - rho)
        log1m = np.log1p(-rho)
        out = (np.log(rho) - log1m)[..., None] * k + (n * log1m)[..., None]
    out += log_choose(n_b, k)
    if not valid.all():
        out = np.where(valid, out, -np.inf)
    return out


def vote_pmf(rho, n) -> np.ndarray:
    r"""Binomial pmf over vote counts: shape S + (max(n) + 1,), zero where k > n.

    ``rho`` and the whole counts ``n`` broadcast together to the shape S.
    """
    return np.exp(vote_logpmf(rho, n))


def broadcast_rows(rho_samples, n) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Flatten (G, [Q,] T) samples to (rows, T) and n to (rows,).

    ``n`` is left-aligned: a scalar, one count per galaxy (G,), or one per galaxy and
    question (G, Q) = rho_samples.shape[:-1].
    """
    rho = as_probabilities(rho_samples)
    if rho.ndim < 2:
        raise ValueError(f"rho_samples must be (galaxies, [Q,] T); got shape {rho.shape}")
    lead = rho.shape[:-1]
    n = as_counts(n)
    if n.shape == lead[:1]:  # per galaxy, shared by its questions
        n = n.reshape(lead[:1] + (1,) * (len(lead) - 1))
    elif n.shape not in ((), lead):
        raise ValueError(
            f"n must be a scalar, per galaxy {lead[:1]} or shaped like rho_samples.shape[:-1] "
            f"{lead}; got shape {n.shape}"
        )
    return rho.reshape(-1, rho.shape[-1]), np.broadcast_to(n, lead).reshape(-1), lead


def row_chunks(n_rows: np.ndarray, per_row: int, chunk_elements: int):
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


def mixture_pmf(
    rho_samples, n, chunk_elements: int = CHUNK_ELEMENTS, concentration=None
) -> np.ndarray:
    r"""Posterior predictive over vote counts, :math:`\frac1T\sum_t\mathrm{Binomial}(k|n,\rho_t)`.

    Args:
        rho_samples: (galaxies, T) or (galaxies, Q, T).
        n: whole vote counts: a scalar, (galaxies,) per galaxy, or rho_samples.shape[:-1].
        concentration: None (binomials), or :math:`\phi > 0` for beta-binomials of mean
            :math:`\rho_t`: a scalar, or one per question (Q,) for (galaxies, Q, T) samples;
            ``inf`` entries are binomial.

    Returns:
        (galaxies, [Q,] max(n) + 1), each row summing to 1 (zeros where k > n).
    """
    rho, n_rows, lead = broadcast_rows(rho_samples, n)
    phi = _concentration_rows(concentration, lead)
    k_max_all = int(n_rows.max()) if n_rows.size else 0
    out = np.zeros((len(rho), k_max_all + 1))
    for idx, n_chunk in row_chunks(n_rows, rho.shape[1], chunk_elements):
        if phi is None:
            logp = logpmf_table(rho[idx], np.float64(n_chunk), n_chunk)
        else:
            logp = _overdispersed_logpmf(rho[idx], n_chunk, phi[idx])
        out[idx, : n_chunk + 1] = np.exp(logp).mean(axis=1)
    return out.reshape(lead + (k_max_all + 1,))


def _concentration_rows(concentration, lead: tuple[int, ...]) -> np.ndarray | None:
    """Per-row concentration (rows,) for samples with leading shape ``lead``, or None."""
    if concentration is None:
        return None
    phi = np.asarray(concentration, dtype=np.float64)
    if np.any(~(phi > 0)):
        raise ValueError(f"concentration must be positive (inf: binomial); got {concentration!r}")
    if phi.ndim == 1 and len(lead) == 2 and phi.shape == lead[1:]:
        return np.broadcast_to(phi[None, :], lead).reshape(-1)
    if phi.ndim:
        raise ValueError(f"concentration must be a scalar or one per question {lead[1:]}")
    return np.broadcast_to(phi, lead).reshape(-1)


def _overdispersed_logpmf(rho: np.ndarray, n: int, phi: np.ndarray) -> np.ndarray:
    """log BetaBinomial(k | n, rho phi, (1 - rho) phi) for rho (rows, T), phi (rows,), k = 0..n;
    binomial where phi is infinite. Uses scipy.stats.betabinom."""
    from scipy import stats

    k = np.arange(n + 1, dtype=np.float64)
    out = logpmf_table(rho, np.float64(n), n)
    finite = np.isfinite(phi)
    if finite.any():
        r = np.clip(rho[finite], 1e-12, 1 - 1e-12)[..., None]
        f = phi[finite][:, None, None]
        out[finite] = stats.betabinom.logpmf(k, n, r * f, (1 - r) * f)
    return out


def _intervals(pmf: np.ndarray, levels: Sequence[float]):
    r"""Yield (lower, upper) central-interval indices of pmf (..., K) for each level.

    As ``scipy.stats.binom.interval``: lower is the smallest k with
    :math:`P(K \le k) \ge (1-\mathrm{level})/2`, upper the smallest k with
    :math:`P(K \le k) \ge q = (1+\mathrm{level})/2`, found as :math:`P(K > k) \le 1 - q`
    from a cumulative sum taken from the top, so both tails are summed from their small end
    and keep their relative precision even for level -> 1 and large n. A mass within a relative
    ``_RTOL`` of its target counts as reaching it, so rounding does not move an exact tie.
    """
    cdf = np.cumsum(pmf, axis=-1)  # P(K <= k)
    above = np.zeros_like(pmf)  # P(K > k)
    above[..., :-1] = np.cumsum(pmf[..., :0:-1], axis=-1)[..., ::-1]
    for level in levels:
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        low_mass, high_mass = (1 - level) / 2, 1 - (1 + level) / 2
        lower = np.argmax(cdf >= low_mass * (1 - _RTOL), axis=-1)  # cdf[..., -1] ~ 1 > 1/2
        upper = np.argmax(above <= high_mass * (1 + _RTOL), axis=-1)  # above[..., -1] == 0
        yield lower, upper


def credible_interval(
    rho_samples, n, level: float, concentration=None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Central credible interval [lower, upper] of the mixture posterior over k.

    ``lower`` is the smallest k with :math:`P(K \le k) \ge (1-\mathrm{level})/2` and ``upper``
    the smallest k with :math:`P(K \le k) \ge (1+\mathrm{level})/2` (the definition of
    ``scipy.stats.binom.interval``), so the interval holds at least ``level`` of the mass.
    ``n`` is a scalar, (galaxies,) or rho_samples.shape[:-1], as in :func:`mixture_pmf`.

    Returns:
        Two int arrays of shape rho_samples.shape[:-1].
    """
    return next(_intervals(mixture_pmf(rho_samples, n, concentration=concentration), [level]))


def _observed(rho_samples, k, n) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate samples (G, [Q,] T) and observed votes k <= n of shape (G, [Q])."""
    rho = as_probabilities(rho_samples)
    n_arr, k_arr = as_counts(n), as_counts(k, "k")
    if rho.ndim < 2 or k_arr.shape != rho.shape[:-1] or n_arr.shape != rho.shape[:-1]:
        raise ValueError(f"k {k_arr.shape} and n {n_arr.shape} must have shape {rho.shape[:-1]}")
    if np.any(k_arr > n_arr):
        i = tuple(int(j) for j in np.argwhere(k_arr > n_arr)[0])
        raise ValueError(f"k exceeds n at index {i}")
    return rho, k_arr, n_arr


def coverage(rho_samples, k, n, levels: Sequence[float], concentration=None) -> np.ndarray:
    """Fraction of galaxies whose observed k lies inside each nominal central interval.

    Args:
        rho_samples: (galaxies, T) or (galaxies, Q, T).
        k, n: observed yes votes and totals, shape rho_samples.shape[:-1]; entries with n = 0
            (question not asked) are left out.
        levels: nominal levels in (0, 1).

    Returns:
        (len(levels),) for 2-d samples, (len(levels), Q) for 3-d samples; NaN for a question
        no galaxy was asked. Because votes are discrete the intervals hold at least their
        nominal mass, so a calibrated model covers at least ``level``.
    """
    rho, k_arr, n_arr = _observed(rho_samples, k, n)
    asked = n_arr > 0
    out = []
    for lower, upper in _intervals(mixture_pmf(rho, n_arr, concentration=concentration), levels):
        inside = (lower <= k_arr) & (k_arr <= upper) & asked
        with np.errstate(invalid="ignore"):  # 0 / 0 = NaN where nobody was asked
            out.append(inside.sum(axis=0) / asked.sum(axis=0))
    return np.asarray(out, dtype=np.float64)


def randomized_pit(rho_samples, k, n, seed: int | None, concentration=None) -> np.ndarray:
    r"""Randomised probability integral transform of observed votes under the mixture posterior.

    With F the mixture CDF over k (:func:`mixture_pmf`) and :math:`U \sim \mathrm{Uniform}(0,1)`
    from ``np.random.default_rng(seed)``,

    .. math:: \mathrm{PIT} = F(k-1) + U\,[F(k) - F(k-1)],

    which is exactly Uniform(0, 1) when k is drawn from the posterior itself, so a histogram of
    PIT values checks calibration without the discreteness of :func:`coverage`.

    Args:
        rho_samples: (galaxies, T) or (galaxies, Q, T).
        k, n: observed yes votes and totals, shape rho_samples.shape[:-1].
        seed: seed of the uniform draws (one per entry of k).

    Returns:
        float64 array of shape rho_samples.shape[:-1]; NaN where n == 0.
    """
    rho, k_arr, n_arr = _observed(rho_samples, k, n)
    pmf = mixture_pmf(rho, n_arr, concentration=concentration)
    idx = k_arr.astype(np.intp)[..., None]
    below = np.take_along_axis(np.cumsum(pmf, axis=-1), idx, axis=-1)[..., 0]
    at = np.take_along_axis(pmf, idx, axis=-1)[..., 0]
    u = np.random.default_rng(seed).random(k_arr.shape)
    return np.where(n_arr > 0, below - at + u * at, np.nan)


def randomized_coverage(
    rho_samples, k, n, levels: Sequence[float], seed: int | None, concentration=None
) -> np.ndarray:
    """Fraction of randomised PIT values (:func:`randomized_pit`) inside the central band
    [(1 - level) / 2, (1 + level) / 2] of each level, over entries with n > 0.

    Unlike :func:`coverage`, whose intervals over discrete votes hold *at least* their level
    (for a question asked of 3 volunteers, an "80%" interval often holds all of them), this is
    exactly ``level`` in expectation for votes drawn from the predictive: the calibration
    check that does not depend on N. Shapes as :func:`coverage`.
    """
    pit = randomized_pit(rho_samples, k, n, seed, concentration=concentration)
    out = []
    for level in levels:
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        inside = (pit >= (1 - level) / 2) & (pit <= (1 + level) / 2)
        with np.errstate(invalid="ignore"):
            out.append(inside.sum(axis=0) / (~np.isnan(pit)).sum(axis=0))
    return np.asarray(out, dtype=np.float64)


def mixture_nll(rho_samples, k, n, concentration=None) -> np.ndarray:
    r"""Mean :math:`-\log \frac1T\sum_t p(k \mid n, \rho_t)` per question over entries with
    n > 0, in nats, from each sample's log-likelihood of the observed k (log-space, so a
    confident wrong prediction gives a large finite value): (Q,) for (galaxies, Q, T) samples,
    a scalar array for (galaxies, T); NaN for a question nobody was asked. Binomial votes, or
    beta-binomial ones with ``concentration`` as in :func:`mixture_pmf`.
    """
    from scipy import stats

    rho, k_arr, n_arr = _observed(rho_samples, k, n)
    logp = stats.binom.logpmf(k_arr[..., None], n_arr[..., None], rho)
    phi = _concentration_rows(concentration, rho.shape[:-1])
    if phi is not None:
        phi = phi.reshape(rho.shape[:-1])[..., None]
        finite = np.isfinite(phi)
        r, f = np.clip(rho, 1e-12, 1 - 1e-12), np.where(finite, phi, 1.0)  # inf: binomial
        over = stats.betabinom.logpmf(k_arr[..., None], n_arr[..., None], r * f, (1 - r) * f)
        logp = np.where(finite, over, logp)
    nll = -(special.logsumexp(logp, axis=-1) - np.log(rho.shape[-1]))
    asked = n_arr > 0
    with np.errstate(invalid="ignore"):
        return np.where(asked, nll, 0.0).sum(axis=0) / asked.sum(axis=0)


CONCENTRATION_GRID = np.concatenate([np.geomspace(1.0, 1e4, 41), [np.inf]])


def fit_concentration(rho_samples, k, n, grid=CONCENTRATION_GRID) -> np.ndarray:
    r"""Per question, the concentration :math:`\phi` on ``grid`` (1 to 1e4 in steps of
    :math:`10^{0.1}`, and ``inf``: plain binomial) that minimises the mixture's mean NLL of the
    observed votes. Fit it on held-out galaxies (the validation split), never the test split.
    A question no galaxy was asked of at least 2 volunteers gets ``inf``: with one vote the
    beta-binomial is the same Bernoulli for every :math:`\phi`.

    Returns:
        (Q,) for (galaxies, Q, T) samples, or a 0-d array for (galaxies, T).
    """
    nll = np.stack([mixture_nll(rho_samples, k, n, concentration=phi) for phi in grid])
    best = np.asarray(grid)[np.argmin(np.where(np.isnan(nll), np.inf, nll), axis=0)]
    # with one vote a beta-binomial is the Bernoulli for every phi: nothing to fit
    _, n_rows, lead = broadcast_rows(rho_samples, n)
    informative = np.any(n_rows.reshape(lead) >= 2, axis=0)
    return np.where(informative, best, np.inf)
