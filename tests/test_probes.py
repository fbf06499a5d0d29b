"""zoolib.cnn.probes: the yardstick of a trunk, against independent references (scikit-learn's
metrics, a brute-force neighbour loop) on tiny fixtures."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, log_loss

from zoolib.cnn import probes, similarity


def blobs(n=120, classes=2, separation=3.0, features=8, seed=0):
    """Gaussian blobs: class c centred at separation * e_c, unit noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    x = rng.normal(size=(n, features))
    x[np.arange(n), labels] += separation
    return x, labels


def test_stratified_folds_spread_each_class_evenly():
    labels = np.array([0] * 23 + [1] * 7 + [2] * 40)
    fold = probes.stratified_folds(labels, 5, seed=1)
    for c in range(3):
        counts = np.bincount(fold[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert not np.array_equal(fold, probes.stratified_folds(labels, 5, seed=2))
    with pytest.raises(ValueError, match="2 folds"):
        probes.stratified_folds(labels, 1)


def test_stratified_sample_keeps_each_class_share_and_all_takes_everything():
    labels = np.array([0] * 30 + [1] * 10)
    rows = probes.stratified_sample(labels, 20, seed=0)
    assert len(rows) == 20 and len(set(rows)) == 20
    assert np.bincount(labels[rows]).tolist() == [15, 5]
    assert np.bincount(labels[probes.stratified_sample(labels, 3, seed=0)]).min() >= 1
    np.testing.assert_array_equal(probes.stratified_sample(labels, probes.ALL, 0), np.arange(40))


def test_scores_match_scikit_learn_and_intervals_cover_the_value():
    rng = np.random.default_rng(3)
    labels = np.array([0] * 70 + [1] * 20 + [2] * 10)
    prob = rng.dirichlet(np.ones(3), size=100)
    prob[np.arange(100), labels] += 0.5 * (rng.random(100) < 0.6)
    prob /= prob.sum(axis=1, keepdims=True)
    s = probes.scores(prob, labels, n_boot=500)
    pred = prob.argmax(1)
    assert s["accuracy"] == pytest.approx(np.mean(pred == labels))
    assert s["balanced accuracy"] == pytest.approx(balanced_accuracy_score(labels, pred))
    assert s["nll"] == pytest.approx(log_loss(labels, prob))
    assert s["recall 2"] == pytest.approx(np.mean(pred[labels == 2] == 2))
    lo, hi = (float(v) for v in s["balanced accuracy 95%"].strip("[]").split(","))
    assert lo < s["balanced accuracy"] < hi


def test_a_majority_guess_has_high_accuracy_but_balanced_accuracy_one_half():
    labels = np.array([0] * 90 + [1] * 10)
    prob = np.tile([0.9, 0.1], (100, 1))
    s = probes.scores(prob, labels, n_boot=200)
    assert s["accuracy"] == pytest.approx(0.9) and s["balanced accuracy"] == pytest.approx(0.5)
    assert s["recall 0"] == 1.0 and s["recall 1"] == 0.0


def test_precision_at_k_equals_a_brute_force_loop(monkeypatch):
    x, labels = blobs(60, classes=3, separation=1.0, seed=4)
    monkeypatch.setattr(similarity, "BLOCK", 7)  # blocks smaller than G
    got = probes.precision_at_k(x, labels, k=5)
    z = (x - x.mean(0)) / x.std(0)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    for g in range(len(x)):
        sims = [(-(z[g] @ z[h]), h) for h in range(len(x)) if h != g]
        near = [h for _, h in sorted(sims)[:5]]
        assert got[g] == pytest.approx(np.mean(labels[near] == labels[g]))
    with pytest.raises(ValueError, match="k must be"):
        probes.precision_at_k(x, labels, k=60)


def test_learning_curve_learns_separable_features_and_not_noise():
    x, labels = blobs(150, separation=3.0, seed=5)
    curve = probes.learning_curve(x, labels, sizes=(10, probes.ALL), n_folds=5)
    assert curve["labels"].tolist() == [10, "all"] and curve["trained on"].tolist() == [10, 120]
    assert (curve["galaxies"] == 150).all()
    assert curve["balanced accuracy"].iloc[-1] > 0.9
    noise = np.random.default_rng(6).normal(size=x.shape)
    flat = probes.learning_curve(noise, labels, sizes=(probes.ALL,), n_folds=5)
    lo, hi = (float(v) for v in flat["balanced accuracy 95%"].iloc[0].strip("[]").split(","))
    assert lo < 0.5 < hi  # chance, and the interval says so


def test_bootstrap_mean_interval():
    mean, interval = probes.bootstrap_mean(np.r_[np.zeros(50), np.ones(50)], n_boot=1000)
    lo, hi = (float(v) for v in interval.strip("[]").split(","))
    assert mean == 0.5 and 0.38 < lo < 0.45 and 0.55 < hi < 0.62  # sd 0.05


def test_pixel_features_are_a_pca_of_small_grey_images():
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (20, 64, 64, 3), dtype=np.uint8)
    f = probes.pixel_features(images, size=8, components=5)
    assert f.shape == (20, 5) and f.dtype == np.float32
    np.testing.assert_allclose(f.mean(axis=0), 0, atol=1e-3)  # centred by the PCA
    np.testing.assert_array_equal(f, probes.pixel_features(images, size=8, components=5))
    assert probes.pixel_features(images, size=8, components=64).shape == (20, 19)  # at most G-1
