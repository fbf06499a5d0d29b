import keras
import numpy as np
import pytest
from scipy import stats

from zoolib import posteriors as post
from zoolib.models import build_bayesian_cnn, split_trunk_head


def test_vote_pmf_matches_scipy(rng):
    rho = rng.random((7, 3))
    n = rng.integers(0, 30, (7, 3))
    got = post.vote_pmf(rho, n)
    assert got.shape == (7, 3, n.max() + 1)
    ks = np.arange(n.max() + 1)
    np.testing.assert_allclose(got, stats.binom.pmf(ks, n[..., None], rho[..., None]), atol=1e-14)
    np.testing.assert_allclose(got.sum(-1), 1.0)


def test_vote_pmf_scalar_n_and_exact_edges():
    got = post.vote_pmf(np.array([0.0, 1.0, 0.3]), 4)
    np.testing.assert_allclose(got, stats.binom.pmf(np.arange(5), 4, [[0.0], [1.0], [0.3]]))


def test_mixture_is_mean_of_binomials(rng):
    rho = rng.random((9, 2, 5))
    n = rng.integers(1, 25, (9, 2))
    got = post.mixture_pmf(rho, n)
    for i in range(9):
        for q in range(2):
            ks = np.arange(n.max() + 1)
            want = np.mean([stats.binom.pmf(ks, n[i, q], r) for r in rho[i, q]], axis=0)
            np.testing.assert_allclose(got[i, q], want, atol=1e-14)


def test_credible_interval_single_sample_equals_scipy_interval(rng):
    rho = rng.random((200, 1))
    n = rng.integers(1, 60, 200)
    for level in (0.5, 0.8, 0.95):
        lo, hi = post.credible_interval(rho, n, level)
        want_lo, want_hi = stats.binom.interval(level, n, rho[:, 0])
        np.testing.assert_array_equal(lo, want_lo)
        np.testing.assert_array_equal(hi, want_hi)


def test_credible_interval_of_mixture_against_brute_force(rng):
    rho = rng.random((50, 6))
    lo, hi = post.credible_interval(rho, 30, 0.8)
    ks = np.arange(31)
    for i in range(50):
        cdf = np.cumsum(np.mean([stats.binom.pmf(ks, 30, r) for r in rho[i]], axis=0))
        assert lo[i] == next(k for k in ks if cdf[k] >= 0.1 - 1e-12)
        assert hi[i] == next(k for k in ks if cdf[k] >= 0.9 - 1e-12)
        mass = cdf[hi[i]] - (cdf[lo[i] - 1] if lo[i] > 0 else 0)
        assert mass >= 0.8 - 1e-12


def test_coverage_against_loop_and_calibrated_when_votes_come_from_the_posterior(rng):
    g, t = 4000, 8
    rho = rng.beta(2, 2, size=(g, t))
    n = rng.integers(0, 45, g)
    pick = rng.integers(0, t, g)  # votes drawn from the mixture itself
    k = rng.binomial(n, rho[np.arange(g), pick])
    levels = [0.5, 0.8, 0.95]
    got = post.coverage(rho, k, n, levels)
    asked = n > 0
    for j, level in enumerate(levels):
        lo, hi = post.credible_interval(rho, n, level)
        assert got[j] == pytest.approx(np.mean(((lo <= k) & (k <= hi))[asked]))
        # discrete intervals hold at least their nominal mass; not much more for these n
        assert level - 0.03 <= got[j] <= level + 0.12
    # overconfident posteriors (one sample, wrong rho) cover far less
    shifted = np.clip(rho[:, :1] + 0.3, 0, 1)
    assert post.coverage(shifted, k, n, [0.8])[0] < 0.6


def test_coverage_per_question_shape(rng):
    rho = rng.random((10, 3, 4))
    n = rng.integers(1, 9, (10, 3))
    k = np.zeros((10, 3))
    assert post.coverage(rho, k, n, [0.5, 0.9]).shape == (2, 3)
    with pytest.raises(ValueError, match="k exceeds n"):
        post.coverage(rho, n + 1, n, [0.5])


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
    assert ((a > 0) & (a < 1)).all()
    np.testing.assert_array_equal(a, b)  # reproducible with a seed
    assert not np.array_equal(a, c)
    assert np.all(a.std(axis=-1) > 0)  # the T samples differ for every galaxy and question


def test_fast_head_sampling_matches_full_passes_in_distribution(small_model, images):
    trunk, head = small_model.get_layer("trunk"), small_model.get_layer("head")
    inp = keras.Input((32, 32, 1))
    x = head.get_layer("mc_dropout")(trunk(inp))
    flat = keras.Model(inp, head.get_layer("logits")(x))  # same weights, no trunk/head split
    assert split_trunk_head(flat) is None
    t = 1500
    fast = post.sample_rho(small_model, images, t, seed=1)
    slow = post.sample_rho(flat, images, t, seed=2)
    assert not np.array_equal(fast, slow)
    se_mean = np.sqrt(fast.var(-1) / t + slow.var(-1) / t)
    assert np.all(np.abs(fast.mean(-1) - slow.mean(-1)) < 5 * se_mean)
    ratio = fast.std(-1) / slow.std(-1)
    assert np.all((ratio > 0.85) & (ratio < 1.15))
    # with dropout off both paths give the same deterministic output
    det = small_model(images.astype("float32"), training=False)
    assert det.shape == (6, 2)


def test_sample_rho_rejects_zero_samples(small_model, images):
    with pytest.raises(ValueError, match="n_samples"):
        post.sample_rho(small_model, images, 0)
