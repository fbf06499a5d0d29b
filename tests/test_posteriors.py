import gc
import weakref

import keras
import numpy as np
import pytest
from scipy import special

from zoolib.cnn import posteriors as post
from zoolib.cnn.models import build_bayesian_cnn, mc_dropout_layers, split_trunk_head
from zoolib.votes import metrics


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


def test_dihedral_views_are_the_eight_symmetries():
    x = np.arange(2 * 3 * 3).reshape(2, 3, 3, 1)
    views = post.dihedral_views(x)
    assert views.shape == (8, 2, 3, 3, 1)
    np.testing.assert_array_equal(views[0], x)
    np.testing.assert_array_equal(views[1, 0, :, :, 0], np.rot90(x[0, :, :, 0]))
    np.testing.assert_array_equal(views[4, 0, :, :, 0], x[0, :, ::-1, 0])
    assert len({v[0].tobytes() for v in views}) == 8  # all different for a generic image


def test_augmented_samples_have_the_moments_of_naive_per_view_passes(small_model, images):
    """Trunk once per view + dropout on the head equals, in distribution, T full stochastic
    passes each on a random view; and augmentation really adds the orientation's spread."""
    trunk, head = small_model.get_layer("trunk"), small_model.get_layer("head")
    inp = keras.Input((32, 32, 1))
    flat = keras.Model(inp, head.get_layer("logits")(head.get_layer("mc_dropout")(trunk(inp))))
    t = 1500
    fast = post.sample_rho(small_model, images, t, seed=3, augment=True)
    slow = post.sample_rho(flat, images, t, seed=4, augment=True)
    assert not np.array_equal(fast, slow)
    for transform in (special.logit, np.asarray):
        assert _same_moments(transform(fast), transform(slow)).all()
    # without dropout, plain samples are all alike and augmented ones differ between views
    still = build_bayesian_cnn(image_size=32, n_questions=2, dropout_rate=0.5, seed=4)
    for layer in mc_dropout_layers(still):
        layer.rate = 0.0  # dropout off (a model built with rate 0 has no dropout stream to seed)
    assert np.all(post.sample_rho(still, images, 16, seed=3).std(-1) < 1e-12)
    assert np.all(post.sample_rho(still, images, 16, seed=3, augment=True).std(-1) > 1e-6)
    again = post.sample_rho(small_model, images, 20, seed=3, augment=True)
    np.testing.assert_array_equal(
        again, post.sample_rho(small_model, images, 20, seed=3, augment=True)
    )


def test_augmented_full_passes_use_each_samples_own_view_across_chunks(images):
    """The fallback sampler (no trunk/head split) stacks T x B full passes into chunks of
    FULL_PASS_ROWS: with dropout off, sample t of galaxy b must be the deterministic output on
    view pick[t, b], the views drawn as sample_rho draws them; chunks must not mix rows up."""
    model = build_bayesian_cnn(image_size=32, n_questions=2, dropout_rate=0.5, seed=6)
    for layer in mc_dropout_layers(model):
        layer.rate = 0.0
    trunk, head = model.get_layer("trunk"), model.get_layer("head")
    inp = keras.Input((32, 32, 1))
    flat = keras.Model(inp, head.get_layer("logits")(head.get_layer("mc_dropout")(trunk(inp))))
    t = 50  # 50 x 6 = 300 rows: two chunks of 256 and 44
    assert t * len(images) > post.FULL_PASS_ROWS
    got = post.sample_logits(flat, images, t, seed=8, augment=True)  # (6, 2, 50)
    pick = np.random.default_rng(8).integers(0, 8, size=(t, len(images)))
    views = post.dihedral_views(images)
    for b in range(len(images)):
        expected = flat(views[pick[:, b], b].astype(np.float32), training=False).numpy()
        np.testing.assert_allclose(got[b].T, expected, rtol=1e-5, atol=1e-5)
    again = post.sample_logits(flat, images, t, seed=8, augment=True)
    np.testing.assert_array_equal(got, again)


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


def test_features_from_the_sampling_pass_are_the_trunks_and_change_no_draw():
    from zoolib.cnn import posteriors
    from zoolib.cnn.models import build_bayesian_cnn

    model = build_bayesian_cnn(16, 1, 2, filters=(4,) * 6, dense_units=8, seed=0)
    x = np.random.default_rng(0).integers(0, 255, (10, 16, 16, 1)).astype(np.float32)
    alone = posteriors.sample_logits(model, x, 6, batch_size=4, seed=3)
    logits, features = posteriors.sample_logits(model, x, 6, batch_size=4, seed=3,
                                                with_features=True)  # fmt: skip
    np.testing.assert_array_equal(logits, alone)
    np.testing.assert_allclose(features, posteriors.trunk_features(model, x), rtol=1e-5,
                               atol=1e-6)  # fmt: skip
    with pytest.raises(ValueError, match="not with augment"):
        posteriors.sample_logits(model, x, 6, augment=True, with_features=True)
