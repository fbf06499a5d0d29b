"""Binomial maths of votes (zoolib.votes.binomial) against scipy.stats and brute-force loops."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from zoolib.votes import binomial


def test_vote_pmf_matches_scipy(rng):
    rho = rng.random((7, 3))
    n = rng.integers(0, 30, (7, 3))
    got = binomial.vote_pmf(rho, n)
    assert got.shape == (7, 3, n.max() + 1)
    ks = np.arange(n.max() + 1)
    np.testing.assert_allclose(got, stats.binom.pmf(ks, n[..., None], rho[..., None]), atol=1e-14)
    np.testing.assert_allclose(got.sum(-1), 1.0)


def test_vote_pmf_scalar_n_and_exact_edges():
    got = binomial.vote_pmf(np.array([0.0, 1.0, 0.3]), 4)
    np.testing.assert_allclose(got, stats.binom.pmf(np.arange(5), 4, [[0.0], [1.0], [0.3]]))


def test_vote_pmf_broadcasts_scalar_rho_against_array_n():
    for rho in (0.3, 0.0, 1.0):
        got = binomial.vote_pmf(rho, [3, 4])
        want = stats.binom.pmf(np.arange(5), np.array([[3], [4]]), rho)
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)
    got = binomial.vote_pmf([[0.2], [0.7]], [3, 4])  # (2, 1) with (2,) -> (2, 2)
    want = stats.binom.pmf(np.arange(5), np.array([3, 4])[:, None], np.array([[[0.2]], [[0.7]]]))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)


def test_log_choose_against_exact_integers():
    # math.comb is exact and math.log of an int is correct to about 1 ulp; gammaln differences
    # are off by up to 7e-12 relative (for k = 1 at n = 1e5), this formula by < 2e-15
    for n in (1, 2, 15, 16, 40, 1000, 5000, 100_000):
        ks = np.unique(np.r_[0:18, np.linspace(0, n, 11).astype(int), n - 16 : n + 1])
        ks = ks[(ks >= 0) & (ks <= n)]
        want = [math.log(math.comb(n, int(k))) for k in ks]
        np.testing.assert_allclose(binomial.log_choose(n, ks), want, rtol=1e-14, atol=0)


def test_mixture_is_mean_of_binomials(rng):
    rho = rng.random((9, 2, 5))
    n = rng.integers(1, 25, (9, 2))
    got = binomial.mixture_pmf(rho, n)
    for i in range(9):
        for q in range(2):
            ks = np.arange(n.max() + 1)
            want = np.mean([stats.binom.pmf(ks, n[i, q], r) for r in rho[i, q]], axis=0)
            np.testing.assert_allclose(got[i, q], want, atol=1e-14)


def test_credible_interval_single_sample_equals_scipy_interval(rng):
    rho = rng.random((200, 1))
    n = rng.integers(1, 60, 200)
    for level in (0.5, 0.8, 0.95):
        lo, hi = binomial.credible_interval(rho, n, level)
        want_lo, want_hi = stats.binom.interval(level, n, rho[:, 0])
        np.testing.assert_array_equal(lo, want_lo)
        np.testing.assert_array_equal(hi, want_hi)


def test_credible_interval_of_mixture_against_brute_force(rng):
    rho = rng.random((50, 6))
    lo, hi = binomial.credible_interval(rho, 30, 0.8)
    ks = np.arange(31)
    for i in range(50):
        cdf = np.cumsum(np.mean([stats.binom.pmf(ks, 30, r) for r in rho[i]], axis=0))
        assert lo[i] == next(k for k in ks if cdf[k] >= 0.1 - 1e-12)
        assert hi[i] == next(k for k in ks if cdf[k] >= 0.9 - 1e-12)
        mass = cdf[hi[i]] - (cdf[lo[i] - 1] if lo[i] > 0 else 0)
        assert mass >= 0.8 - 1e-12


def test_credible_interval_far_tails_against_scipy():
    # the CDF of a large table never quite reaches 1 - 5e-11 by rounding (it used to give hi = 0)
    n, level = 1_000_000, 1 - 1e-10
    lo, hi = binomial.credible_interval(np.array([[0.3]]), n, level)
    assert (lo[0], hi[0]) == stats.binom.interval(level, n, 0.3)
    rho = np.array([0.3, 0.31])
    lo, hi = binomial.credible_interval(rho[None, :], n, level)
    ks = np.arange(n + 1)
    cdf = np.mean([stats.binom.cdf(ks, n, r) for r in rho], axis=0)
    above = np.mean([stats.binom.sf(ks, n, r) for r in rho], axis=0)
    assert lo[0] == np.argmax(cdf >= (1 - level) / 2)
    assert hi[0] == np.argmax(above <= 1 - (1 + level) / 2)
    # a lower tail mass below 1e-12 is not rounded down to k = 0
    level = 1 - 1e-13
    lo, hi = binomial.credible_interval(np.array([[0.3]]), 1000, level)
    assert lo[0] == stats.binom.ppf((1 - level) / 2, 1000, 0.3) > 0
    assert (lo[0], hi[0]) == stats.binom.interval(level, 1000, 0.3)


def test_per_galaxy_n_is_left_aligned_even_when_galaxies_equal_questions(rng):
    g = q = 3
    rho = rng.random((g, q, 5))
    n = np.array([4, 10, 25])  # one n per galaxy, shared by its questions
    got = binomial.mixture_pmf(rho, n)
    lo, hi = binomial.credible_interval(rho, n, 0.8)
    for i in range(g):
        ks = np.arange(n.max() + 1)
        for j in range(q):
            want = np.mean([stats.binom.pmf(ks, n[i], r) for r in rho[i, j]], axis=0)
            np.testing.assert_allclose(got[i, j], want, atol=1e-14)
            cdf = np.cumsum(want)
            assert lo[i, j] == np.argmax(cdf >= 0.1 - 1e-12)
            assert hi[i, j] == np.argmax(cdf >= 0.9 - 1e-12)
    for bad in (np.ones((4,)), np.ones((g, 1)), np.ones((q, g, 1))):
        with pytest.raises(ValueError, match=r"n must be a scalar, per galaxy \(3,\)"):
            binomial.mixture_pmf(rho, bad)
        with pytest.raises(ValueError, match=r"n must be a scalar, per galaxy \(3,\)"):
            binomial.credible_interval(rho, bad, 0.5)


def test_coverage_against_loop_and_calibrated_when_votes_come_from_the_posterior(rng):
    g, t = 4000, 8
    rho = rng.beta(2, 2, size=(g, t))
    n = rng.integers(0, 45, g)
    pick = rng.integers(0, t, g)  # votes drawn from the mixture itself
    k = rng.binomial(n, rho[np.arange(g), pick])
    levels = [0.5, 0.8, 0.95]
    got = binomial.coverage(rho, k, n, levels)
    asked = n > 0
    for j, level in enumerate(levels):
        lo, hi = binomial.credible_interval(rho, n, level)
        assert got[j] == pytest.approx(np.mean(((lo <= k) & (k <= hi))[asked]))
        # each galaxy is covered with probability = the mixture mass inside its interval
        mass = np.mean(
            stats.binom.cdf(hi[:, None], n[:, None], rho)
            - stats.binom.cdf(lo[:, None] - 1, n[:, None], rho),
            axis=1,
        )[asked]
        assert np.all(mass >= level - 1e-12)
        standard_error = np.sqrt(np.sum(mass * (1 - mass))) / asked.sum()
        assert abs(got[j] - mass.mean()) < 4 * standard_error
    # overconfident posteriors (one sample, wrong rho) cover far less
    shifted = np.clip(rho[:, :1] + 0.3, 0, 1)
    assert binomial.coverage(shifted, k, n, [0.8])[0] < 0.6


def test_coverage_per_question_shape(rng):
    rho = rng.random((10, 3, 4))
    n = rng.integers(1, 9, (10, 3))
    k = np.zeros((10, 3))
    assert binomial.coverage(rho, k, n, [0.5, 0.9]).shape == (2, 3)
    with pytest.raises(ValueError, match="k exceeds n"):
        binomial.coverage(rho, n + 1, n, [0.5])


def test_coverage_is_nan_without_warning_for_a_question_nobody_was_asked(rng):
    rho = rng.random((30, 2, 4))
    n = np.stack([np.zeros(30), rng.integers(1, 9, 30)], axis=1)
    k = np.floor(rng.random((30, 2)) * (n + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = binomial.coverage(rho, k, n, [0.5, 0.9])
    assert np.isnan(got[:, 0]).all()
    for j, level in enumerate([0.5, 0.9]):
        lo, hi = binomial.credible_interval(rho[:, 1], n[:, 1], level)
        assert got[j, 1] == np.mean((lo <= k[:, 1]) & (k[:, 1] <= hi))


def _mixture_cdf(rho_row, k, n):
    """Mixture CDF P(K <= k) with scipy, -1 < k allowed (gives 0)."""
    return np.mean(stats.binom.cdf(k, n, rho_row))


def test_randomized_pit_is_uniform_for_votes_from_the_posterior(rng):
    g, t = 3000, 6
    rho = rng.beta(2, 2, size=(g, t))
    n = rng.integers(0, 40, g)
    k = rng.binomial(n, rho[np.arange(g), rng.integers(0, t, g)])
    pit = binomial.randomized_pit(rho, k, n, seed=3)
    asked = n > 0
    assert pit.shape == (g,) and np.isnan(pit[~asked]).all() and not np.isnan(pit[asked]).any()
    for i in np.flatnonzero(asked)[:200]:  # each value lies between F(k - 1) and F(k)
        assert _mixture_cdf(rho[i], k[i] - 1, n[i]) - 1e-12 <= pit[i]
        assert pit[i] <= _mixture_cdf(rho[i], k[i], n[i]) + 1e-12
    assert stats.kstest(pit[asked], "uniform").pvalue > 1e-3
    np.testing.assert_array_equal(pit, binomial.randomized_pit(rho, k, n, seed=3))
    # an over-confident posterior (one sample, pushed away from the truth) is far from uniform
    narrow = np.clip(rho[:, :1] + 0.2, 0, 1)
    pit = binomial.randomized_pit(narrow, k, n, seed=3)[asked]
    assert stats.kstest(pit, "uniform").pvalue < 1e-6


def test_randomized_pit_per_question_and_validation(rng):
    rho = rng.random((50, 2, 4))
    n = rng.integers(0, 9, (50, 2))
    k = np.floor(rng.random((50, 2)) * (n + 1))
    pit = binomial.randomized_pit(rho, k, n, seed=0)
    assert pit.shape == (50, 2)
    np.testing.assert_array_equal(np.isnan(pit), n == 0)
    with pytest.raises(ValueError, match="k exceeds n"):
        binomial.randomized_pit(rho, n + 1, n, seed=0)


def test_overdispersed_mixture_matches_scipy_betabinom_and_the_binomial_limit(rng):
    rho = rng.uniform(0.05, 0.95, size=(6, 2, 1))
    n = rng.integers(1, 40, size=(6, 2))
    phi = np.array([3.0, 50.0])  # one per question
    pmf = binomial.mixture_pmf(rho, n, concentration=phi)
    for g in range(6):
        for q in range(2):
            a, b = rho[g, q, 0] * phi[q], (1 - rho[g, q, 0]) * phi[q]
            want = stats.betabinom.pmf(np.arange(n[g, q] + 1), n[g, q], a, b)
            np.testing.assert_allclose(pmf[g, q, : n[g, q] + 1], want, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(
        binomial.mixture_pmf(rho, n, concentration=np.inf), binomial.mixture_pmf(rho, n),
        rtol=1e-12, atol=1e-300,
    )  # fmt: skip
    with pytest.raises(ValueError, match="concentration must be positive"):
        binomial.mixture_pmf(rho, n, concentration=0.0)


def test_fit_concentration_recovers_overdispersion_and_calibrates_coverage(rng):
    """Votes drawn from beta-binomials of known rho and phi = 20: the fit finds phi within a
    grid step or two, and intervals with it cover the nominal mass where the plain binomial
    (phi = inf) under-covers."""
    g, phi = 4000, 20.0
    rho = rng.uniform(0.1, 0.9, size=(g, 1))
    n = rng.integers(10, 40, size=g)
    k = stats.betabinom.rvs(n, rho[:, 0] * phi, (1 - rho[:, 0]) * phi, random_state=rng)
    fitted = float(binomial.fit_concentration(rho, k, n))
    assert 20.0 / 10**0.25 < fitted < 20.0 * 10**0.25
    calibrated = binomial.coverage(rho, k, n, [0.8, 0.95], concentration=fitted)
    plain = binomial.coverage(rho, k, n, [0.8, 0.95])
    assert np.all(calibrated >= [0.79, 0.945]) and np.all(calibrated <= [0.9, 0.99])
    assert np.all(plain < [0.75, 0.9])
    nll_fit = binomial.mixture_nll(rho, k, n, concentration=fitted)
    assert nll_fit < binomial.mixture_nll(rho, k, n)
    nobody = np.zeros_like(n)
    assert binomial.fit_concentration(rho, nobody, nobody) == np.inf  # nobody was asked
    once = np.ones_like(n)  # one vote each: every phi gives the same Bernoulli
    assert binomial.fit_concentration(rho, np.minimum(k, once), once) == np.inf


def test_randomized_coverage_is_exact_where_plain_intervals_are_conservative(rng):
    """Votes of 3 volunteers drawn from the posterior itself: the plain 80% interval holds far
    more than 80% (discreteness), the randomised-PIT band holds 80% (within sampling error)."""
    g = 20000
    rho = rng.uniform(0.2, 0.8, size=(g, 4))
    n = np.full(g, 3)
    pick = rng.integers(0, 4, size=g)
    k = rng.binomial(n, rho[np.arange(g), pick])
    plain = binomial.coverage(rho, k, n, [0.5, 0.8])
    exact = binomial.randomized_coverage(rho, k, n, [0.5, 0.8], seed=0)
    assert np.all(plain > [0.6, 0.9])
    np.testing.assert_allclose(exact, [0.5, 0.8], atol=0.012)  # about 4 standard errors
