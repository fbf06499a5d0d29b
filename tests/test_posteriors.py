import gc
import math
import warnings
import weakref

import keras
import numpy as np
import pytest
from scipy import special, stats

from zoolib import binomial, metrics
from zoolib import posteriors as post
from zoolib.models import build_bayesian_cnn, split_trunk_head


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


@pytest.fixture(scope="module")
def small_model():
    return build_bayesian_cnn(image_size=32, n_questions=2, dropout_rate=0.5, seed=4)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(5).integers(0, 256, (6, 32, 32, 1)).astype(np.uint8)


def test_sample_rho_shape_variety_and_seed(small_model, images):
    a = post.sample_rho(small_model, images, 10, batch_size=4, seed=11)
    b = post.sample_rho(small_model, images, 10, batch_size=4, seed=11)
    c = post.sample_rho(small_model, images, 10, batch_size=4, seed=12)
    assert a.shape == (6, 2, 10) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)  # reproducible with a seed
    assert not np.array_equal(a, c)
    assert np.all(a.std(axis=-1) > 0)  # the T samples differ for every galaxy and question


def _moments_and_standard_errors(samples):
    """Mean and standard deviation over the last axis, with their Monte-Carlo standard errors.

    SE(mean) = s / sqrt(T). For the standard deviation, Var(s^2) = (m4 - s^4) / T to leading
    order (m4 the fourth central moment) and the delta method gives
    SE(s) = sqrt((m4 - s^4) / T) / (2 s), which is s / sqrt(2T) for Gaussian samples.
    """
    t = samples.shape[-1]
    centred = samples - samples.mean(-1, keepdims=True)
    var, m4 = (centred**2).mean(-1), (centred**4).mean(-1)
    sd = np.sqrt(var)
    return samples.mean(-1), sd, sd / np.sqrt(t), np.sqrt((m4 - var**2) / t) / (2 * sd)


def _same_moments(a, b, z=5.0):
    """Per row: do the means and standard deviations of a and b agree within z standard errors?"""
    mean_a, sd_a, se_mean_a, se_sd_a = _moments_and_standard_errors(a)
    mean_b, sd_b, se_mean_b, se_sd_b = _moments_and_standard_errors(b)
    means = np.abs(mean_a - mean_b) < z * np.hypot(se_mean_a, se_mean_b)
    sds = np.abs(sd_a - sd_b) < z * np.hypot(se_sd_a, se_sd_b)
    return means & sds


def test_fast_head_sampling_matches_full_passes_in_distribution(small_model, images):
    # the naive method: a model that split_trunk_head does not recognise gets the fallback
    # sampler, T full stochastic forward passes model(x) with MC dropout on
    trunk, head = small_model.get_layer("trunk"), small_model.get_layer("head")
    inp = keras.Input((32, 32, 1))
    x = head.get_layer("mc_dropout")(trunk(inp))
    flat = keras.Model(inp, head.get_layer("logits")(x))  # same weights, no trunk/head split
    assert split_trunk_head(flat) is None and split_trunk_head(small_model) is not None
    t = 1500
    fast = post.sample_rho(small_model, images, t, seed=1)  # (6 galaxies, Q = 2, T)
    slow = post.sample_rho(flat, images, t, seed=2)
    assert not np.array_equal(fast, slow)
    # dropout really varies: every galaxy and question has a spread far above rounding
    assert np.all(special.logit(fast).std(-1) > 1e-3) and np.all(special.logit(slow).std(-1) > 1e-3)
    # per galaxy and question, mean and standard deviation of the logits and of rho agree
    # within 5 Monte-Carlo standard errors (the draws are seeded; for other seeds, 12 galaxy-
    # questions times 2 moments times 2 scales give a false alarm with odds below 1e-4)
    for transform in (special.logit, np.asarray):
        assert _same_moments(transform(fast), transform(slow)).all()
    # ... and the check is sharp enough to see a sampler whose spread is 25% off, or whose
    # mean is off by half a standard deviation
    logits = special.logit(fast)
    centre = logits.mean(-1, keepdims=True)
    assert not _same_moments(centre + 0.75 * (logits - centre), special.logit(slow)).any()
    shifted = logits + 0.5 * logits.std(-1, keepdims=True)
    assert not _same_moments(shifted, special.logit(slow)).any()
    # with dropout off, the split and the flat model are the same network
    np.testing.assert_array_equal(
        post.deterministic_rho(flat, images), post.deterministic_rho(small_model, images)
    )


def test_sample_rho_rejects_zero_samples(small_model, images):
    with pytest.raises(ValueError, match="n_samples"):
        post.sample_rho(small_model, images, 0)


def test_confident_model_gives_rho_inside_unit_interval_and_finite_nll(images):
    model = build_bayesian_cnn(image_size=32, n_questions=2, seed=7)
    logits = model.get_layer("head").get_layer("logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel, bias + np.array([40.0, -40.0], dtype=bias.dtype)])
    assert special.expit(np.float64(37)) == 1.0  # why a clip is needed at all
    for rho in (post.sample_rho(model, images, 5, seed=0), post.deterministic_rho(model, images)):
        assert rho[:, 0].max() < 1 and rho[:, 1].min() > 0
        np.testing.assert_array_equal(rho[:, 0], 1 - post.RHO_CLIP)
        np.testing.assert_array_equal(rho[:, 1], post.RHO_CLIP)
    rho = post.sample_rho(model, images, 5, seed=0)
    n = np.full((6, 2), 10)
    worst = np.where([True, False], 0, 10) * np.ones((6, 1))  # k = 0 yes, then k = n
    nll = metrics.mean_posterior_nll(rho, worst, n)
    assert np.isfinite(nll).all()
    np.testing.assert_allclose(nll, -10 * np.log(post.RHO_CLIP), rtol=1e-3)


def test_deterministic_rho_is_the_network_without_dropout(small_model, images):
    trunk, head = small_model.get_layer("trunk"), small_model.get_layer("head")
    kernel, bias = head.get_layer("logits").get_weights()
    features = trunk(images.astype("float32"), training=False).numpy().astype(np.float64)
    want = special.expit(features @ kernel + bias)  # Dense in float64, no dropout
    got = post.deterministic_rho(small_model, images, batch_size=4)
    assert got.shape == (6, 2) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # the model computes in float32


def test_deterministic_logits_are_the_mean_of_mc_dropout_logits(small_model, images):
    # inverted dropout keeps every unit's mean, and the layer after it is affine
    t = 4000
    logits = special.logit(post.sample_rho(small_model, images, t, seed=5))  # (6, 2, T)
    det = special.logit(post.deterministic_rho(small_model, images))
    standard_error = logits.std(axis=-1) / np.sqrt(t)
    assert np.all(np.abs(logits.mean(axis=-1) - det) < 5 * standard_error)
    assert np.all(standard_error > 0)


def test_deterministic_rho_rejects_models_it_cannot_rebuild(images):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.flatten = keras.layers.Flatten()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(self.flatten(x))

    model = Subclassed()
    model(images[:1].astype("float32"))
    with pytest.raises(ValueError, match="cannot remove the dropout layers"):
        post.deterministic_rho(model, images)


@pytest.mark.parametrize("split", [True, False])
def test_models_used_for_sampling_can_be_garbage_collected(split, images):
    model = build_bayesian_cnn(image_size=32, n_questions=2, seed=8)
    if not split:  # the fallback sampler closes over the model itself
        trunk, head = model.get_layer("trunk"), model.get_layer("head")
        inp = keras.Input((32, 32, 1))
        model = keras.Model(inp, head.get_layer("logits")(head.get_layer("mc_dropout")(trunk(inp))))
        assert split_trunk_head(model) is None
    post.sample_rho(model, images, 3, seed=0)
    post.deterministic_rho(model, images)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
