"""The numpy MC-dropout head: masks, sampling against the Keras head and the dropout variance
formula, training against scipy's optimiser on the same likelihood."""

import numpy as np
import pytest
from scipy import optimize, special

from zoolib.active import heads


def toy(seed=0, galaxies=400, features=6, questions=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(galaxies, features))
    true_w = rng.normal(size=(features, questions))
    n = rng.integers(0, 30, size=(galaxies, questions)).astype(float)
    k = rng.binomial(n.astype(int), special.expit(x @ true_w - 0.3)).astype(float)
    return x, k, n


@pytest.mark.parametrize("rate", [0.5, 0.3])
def test_masks_drop_at_the_rate_and_keep_the_mean(rate):
    m = heads.masks(np.random.default_rng(1), (2000, 64), rate)
    assert m.dtype == np.float32 and set(np.unique(m)) == {0.0, np.float32(1 / (1 - rate))}
    assert abs((m == 0).mean() - rate) < 0.01
    assert abs(m.mean() - 1.0) < 0.01


def test_no_dropout_logits_equal_the_keras_head():
    from zoolib.cnn import models

    head = models.build_head(8, 3, dropout_rate=0.0, seed=3)
    w, b = heads.keras_head_weights(head)
    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    ours = heads.sample_logits(x, w, b, 4, 0.0, np.random.default_rng(0))
    keras_logits = head(x, training=False).numpy()
    np.testing.assert_allclose(ours, np.repeat(keras_logits[:, :, None], 4, axis=2), atol=1e-5)


def test_dropout_samples_have_the_mean_and_variance_of_the_formula():
    rng = np.random.default_rng(4)
    x, w, b, rate = rng.normal(size=(3, 16)), rng.normal(size=(16, 2)), np.array([0.2, -1.0]), 0.5
    z = heads.sample_logits(x, w, b, 20000, rate, rng)
    mean = x @ w + b  # inverted dropout keeps the mean
    var = rate / (1 - rate) * (x**2) @ (w**2)  # independent units: sum of x^2 w^2 Var(m)
    np.testing.assert_allclose(z.mean(-1), mean, atol=4 * np.sqrt(var / 20000).max())
    np.testing.assert_allclose(z.var(-1), var, rtol=0.05)


def test_views_are_drawn_per_sample():
    rng = np.random.default_rng(0)
    views = np.stack([np.full((5, 4), v, dtype=float) for v in range(8)])  # view v: all v
    z = heads.sample_logits(views, np.ones((4, 1)), np.zeros(1), 400, 0.0, rng)
    seen = z[:, 0, :] / 4  # the view index of each sample
    assert set(np.unique(seen)) == set(range(8))
    assert abs(seen.mean() - 3.5) < 0.3


def test_without_dropout_training_finds_the_maximum_likelihood():
    x, k, n = toy()
    settings = heads.HeadSettings(dropout_rate=0.0, steps=3000, learning_rate=0.05, l2=0.0)
    w, b = heads.fit(x, k, n, settings, np.random.default_rng(0))

    def loss(theta):  # independent: scipy's optimiser on the same likelihood
        tw, tb = theta[:-2].reshape(6, 2), theta[-2:]
        return heads.mean_loss(x, k, n, tw, tb)

    best = optimize.minimize(loss, np.zeros(14), method="BFGS", options={"gtol": 1e-9})
    assert loss(np.r_[w.ravel(), b]) - best.fun < 1e-4
    np.testing.assert_allclose(np.r_[w.ravel(), b], best.x, atol=0.02)


def test_weighted_training_finds_the_weighted_maximum_likelihood():
    x, k, n = toy()
    v = np.random.default_rng(3).uniform(0.2, 3.0, len(x))
    settings = heads.HeadSettings(dropout_rate=0.0, steps=3000, learning_rate=0.05, l2=0.0)
    w, b = heads.fit(x, k, n, settings, np.random.default_rng(0), weights=v)

    def loss(theta):  # independent: scipy on (1/G) sum_g v_g l_g
        z = x @ theta[:-2].reshape(6, 2) + theta[-2:]
        return np.mean(v * np.sum(n * np.logaddexp(0, z) - k * z, axis=-1))

    best = optimize.minimize(loss, np.zeros(14), method="BFGS", options={"gtol": 1e-9})
    np.testing.assert_allclose(np.r_[w.ravel(), b], best.x, atol=0.02)
    plain = heads.fit(x, k, n, settings, np.random.default_rng(0))
    assert np.abs(plain[0] - w).max() > 0.05  # the weights matter
    ones = heads.fit(x, k, n, settings, np.random.default_rng(0), weights=np.ones(len(x)))
    np.testing.assert_array_equal(ones[0], plain[0])  # weights of 1 change nothing


def test_heads_trained_together_each_find_their_own_maximum():
    sets = [toy(seed) for seed in (1, 2, 3)]
    x, k, n = (np.stack([s[i] for s in sets]) for i in range(3))
    settings = heads.HeadSettings(dropout_rate=0.0, steps=3000, learning_rate=0.05, l2=0.0)
    w, b = heads.fit(x, k, n, settings, np.random.default_rng(0))
    for h in range(3):
        alone = heads.fit(x[h], k[h], n[h], settings, np.random.default_rng(9))
        np.testing.assert_allclose(w[h], alone[0], atol=1e-3)
        np.testing.assert_allclose(b[h], alone[1], atol=1e-3)


def test_training_with_dropout_is_reproducible_and_beats_the_constant():
    x, k, n = toy(galaxies=300)
    settings = heads.HeadSettings()
    w1, b1 = heads.fit(x, k, n, settings, np.random.default_rng(5))
    w2, b2 = heads.fit(x, k, n, settings, np.random.default_rng(5))
    np.testing.assert_array_equal(w1, w2)
    constant = heads.mean_loss(x, k, n, np.zeros_like(w1), heads.initial_bias(k, n))
    assert heads.mean_loss(x, k, n, w1, b1) < constant - 1.0


def test_bad_settings_and_shapes_are_named():
    with pytest.raises(ValueError, match="dropout_rate"):
        heads.HeadSettings(dropout_rate=1.0)
    with pytest.raises(ValueError, match="steps"):
        heads.HeadSettings(steps=0)
    with pytest.raises(ValueError, match=r"\(H, G, F\)"):
        heads.fit(np.zeros((2, 3, 4)), np.zeros((2, 5, 1)), np.zeros((2, 5, 1)),
                  heads.HeadSettings(), np.random.default_rng(0))  # fmt: skip


def frozen_setup(tree=None, likelihood="binomial"):
    import pandas as pd

    from zoolib.cnn import cards, models

    rng = np.random.default_rng(3)
    images = rng.integers(0, 255, (40, 16, 16, 1)).astype(np.uint8)
    yes = (np.arange(40) % 3 == 0).astype(float)
    if tree is None:
        questions = ["smooth-or-featured"]
        catalog = pd.DataFrame({"smooth-or-featured_smooth": yes * 3,
                                "smooth-or-featured_total-votes": np.full(40, 3.0)})  # fmt: skip
    else:
        questions = list(tree)
        catalog = pd.DataFrame({f"{q}_{a}": (yes if i == 0 else 1 - yes) for q in tree
                                for i, a in enumerate(tree[q]["answers"])})  # fmt: skip
        for q in tree:
            catalog[f"{q}_total-votes"] = 1.0
    card = cards.ModelCard(questions, 16, 1, tree=tree, extra={"likelihood": likelihood})
    model = models.build_bayesian_cnn(16, 1, len(card.outputs()), filters=(4,) * 6,
                                      dense_units=8, seed=0)  # fmt: skip
    return model, card, images, catalog


def test_fit_model_head_sets_the_numpy_heads_weights_and_keeps_the_trunk():
    from zoolib.cnn import models, posteriors

    model, card, images, catalog = frozen_setup()
    trunk_before = [w.copy() for w in models.split_trunk_head(model)[0].get_weights()]
    settings = heads.HeadSettings(steps=50)
    heads.fit_model_head(model, card, images, catalog, settings, seed=4)
    k, n = card.counts(catalog)
    f = posteriors.trunk_features(model, images)
    w, b = heads.fit(f, k, n, settings, np.random.default_rng(4))
    got_w, got_b = heads.keras_head_weights(models.split_trunk_head(model)[1])
    np.testing.assert_allclose(got_w, w, rtol=1e-6)
    np.testing.assert_allclose(got_b, b, rtol=1e-6)
    for a, c in zip(trunk_before, models.split_trunk_head(model)[0].get_weights(), strict=True):
        np.testing.assert_array_equal(a, c)


def test_fit_model_head_on_a_two_answer_tree_is_the_sigmoid_of_the_first_answer():
    from zoolib.cnn import models, posteriors

    tree = {"ring": {"answers": ["yes", "no"]}}
    model, card, images, catalog = frozen_setup(tree, "multinomial")
    heads.fit_model_head(model, card, images, catalog, heads.HeadSettings(steps=50))
    w, b = heads.keras_head_weights(models.split_trunk_head(model)[1])
    assert np.all(w[:, 1] == 0) and b[1] == 0 and np.any(w[:, 0] != 0)
    z = posteriors.trunk_features(model, images) @ w + b  # the deterministic logits
    softmax = np.exp(z[:, 0]) / np.exp(z).sum(1)
    np.testing.assert_allclose(softmax, special.expit(z[:, 0]), rtol=1e-12)


def test_fit_model_head_fits_each_questions_first_answer_of_a_two_question_tree():
    from zoolib.cnn import models, posteriors

    tree = {"ring": {"answers": ["yes", "no"]}, "bar2": {"answers": ["yes", "no"]}}
    model, card, images, catalog = frozen_setup(tree, "multinomial")
    settings = heads.HeadSettings(steps=40)
    heads.fit_model_head(model, card, images, catalog, settings, seed=2)
    k, n = card.counts(catalog)
    f = posteriors.trunk_features(model, images)
    w, b = heads.fit(f, k[:, [0, 2]], n[:, [0, 2]], settings, np.random.default_rng(2))
    got_w, got_b = heads.keras_head_weights(models.split_trunk_head(model)[1])
    np.testing.assert_allclose(got_w[:, [0, 2]], w, rtol=1e-6)
    np.testing.assert_allclose(got_b[[0, 2]], b, rtol=1e-6)
    assert np.all(got_w[:, [1, 3]] == 0) and np.all(got_b[[1, 3]] == 0)


def test_fit_model_head_uses_the_models_own_dropout_rate():
    from zoolib.cnn import models, posteriors

    model, card, images, catalog = frozen_setup()
    model = models.build_bayesian_cnn(16, 1, 1, dropout_rate=0.2, filters=(4,) * 6,
                                      dense_units=8, seed=0)  # fmt: skip
    settings = heads.HeadSettings(steps=30)  # dropout 0.5 here, 0.2 in the model
    heads.fit_model_head(model, card, images, catalog, settings, seed=1)
    k, n = card.counts(catalog)
    f = posteriors.trunk_features(model, images)
    w, _ = heads.fit(f, k, n, heads.HeadSettings(steps=30, dropout_rate=0.2),
                     np.random.default_rng(1))  # fmt: skip
    got_w, _ = heads.keras_head_weights(models.split_trunk_head(model)[1])
    np.testing.assert_allclose(got_w, w, rtol=1e-6)


def test_fit_model_head_refuses_a_model_that_is_not_the_cards():
    import keras

    _, card, images, catalog = frozen_setup()
    flat = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(1)])  # fmt: skip
    with pytest.raises(ValueError, match="not the paper's CNN with 1 outputs"):
        heads.fit_model_head(flat, card, images, catalog)


def test_fit_model_head_refuses_more_than_two_answers():
    tree = {"q": {"answers": ["a", "b", "c"]}}
    model, card, images, catalog = frozen_setup(tree, "multinomial")
    with pytest.raises(ValueError, match="use regime 'fine_tune'"):
        heads.fit_model_head(model, card, images, catalog)
    assert not heads.can_fit_model_head(card)


def _tree_votes(rng, g=120, f=5, sizes=(3, 2)):
    x = rng.normal(size=(g, f)).astype(np.float32)
    true_w = rng.normal(size=(f, sum(sizes)))
    k, n = [], []
    for j, part in enumerate(np.split(x @ true_w, np.cumsum(sizes)[:-1], axis=1)):
        p = np.exp(part - part.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        total = rng.integers(0, 12, size=g) if j else np.full(g, 10)  # N = 0: not asked
        k.append(np.stack([rng.multinomial(t, q) for t, q in zip(total, p, strict=True)]))
        n.append(np.repeat(total[:, None], sizes[j], axis=1))
    return x, np.concatenate(k, 1).astype(float), np.concatenate(n, 1).astype(float)


def test_a_softmax_heads_gradient_matches_finite_differences_of_its_loss():
    rng = np.random.default_rng(3)
    x, k, n = _tree_votes(rng)
    sizes = (3, 2)
    w, b = rng.normal(size=(5, 5)) * 0.3, rng.normal(size=5) * 0.3
    z = x.astype(np.float64) @ w + b
    analytic = (x.T @ heads.output_gradient(z, k, n, sizes)) / len(x)  # d(mean loss)/dW
    eps, numeric = 1e-6, np.zeros_like(w)
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            up, down = w.copy(), w.copy()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (heads.mean_loss(x, k, n, up, b, sizes)
                             - heads.mean_loss(x, k, n, down, b, sizes)) / (2 * eps)  # fmt: skip
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_a_softmax_head_trained_without_dropout_reaches_scipys_optimum():
    """Multinomial logistic regression per question with the same L2: Adam's head (no dropout)
    against scipy's L-BFGS on the same objective."""
    from scipy import optimize

    rng = np.random.default_rng(4)
    x, k, n = _tree_votes(rng)
    sizes, l2 = (3, 2), 0.01
    settings = heads.HeadSettings(dropout_rate=0.0, steps=3000, learning_rate=0.03, l2=l2)
    w, b = heads.fit(x, k, n, settings, np.random.default_rng(0), sizes=sizes)

    def objective(theta):
        ww, bb = theta[:25].reshape(5, 5), theta[25:]
        return heads.mean_loss(x, k, n, ww, bb, sizes) + 0.5 * l2 * np.sum(ww**2)

    best = optimize.minimize(objective, np.zeros(30), method="L-BFGS-B")
    ours = objective(np.concatenate([w.ravel(), b]))
    assert ours == pytest.approx(best.fun, rel=1e-4)
    assert heads.initial_bias(k, n, sizes).shape == (5,)
    with pytest.raises(ValueError, match="do not add up to the 5 outputs"):
        heads.fit(x, k, n, settings, np.random.default_rng(0), sizes=(3, 3))
