"""Nearest neighbours and unusualness of trunk features (zoolib.cnn.similarity), against loops."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from zoolib.cnn import similarity


def features(g=50, f=6, seed=0):
    return np.random.default_rng(seed).normal(size=(g, f)) * np.arange(1, f + 1)


def test_nearest_equals_a_brute_force_loop_over_scipy_cosine_distances(monkeypatch):
    x = features()
    monkeypatch.setattr(similarity, "BLOCK", 8)  # several blocks
    index, sims = similarity.nearest(x, k=4)
    z = (x - x.mean(0)) / x.std(0)
    d = cdist(z, z, "cosine")  # 1 - cosine similarity, an independent implementation
    for g in range(len(x)):
        order = sorted((d[g, h], h) for h in range(len(x)) if h != g)[:4]
        assert index[g].tolist() == [h for _, h in order]
        np.testing.assert_allclose(sims[g], [1 - v for v, _ in order], atol=1e-12)


def test_nearest_of_chosen_rows_and_bad_arguments():
    x = features()
    index, _ = similarity.nearest(x, k=3, rows=[5, 7])
    full, _ = similarity.nearest(x, k=3)
    np.testing.assert_array_equal(index, full[[5, 7]])
    with pytest.raises(ValueError, match="k must be between 1 and 49"):
        similarity.nearest(x, k=50)
    with pytest.raises(ValueError, match="rows must be between 0 and 49"):
        similarity.nearest(x, k=3, rows=[50])
    bad = x.copy()
    bad[9, 2] = np.nan
    with pytest.raises(ValueError, match="row 9"):
        similarity.nearest(bad)


def test_a_constant_feature_does_not_break_the_similarities():
    x = features()
    x[:, 0] = 3.0
    z = similarity.standardise(x)
    assert np.isfinite(z).all() and np.allclose(np.linalg.norm(z, axis=1), 1.0)


def test_the_odd_one_out_is_the_most_unusual():
    rng = np.random.default_rng(1)
    centre = rng.normal(size=8)
    x = centre + 0.1 * rng.normal(size=(40, 8))  # one kind of galaxy
    x[:20] *= -1  # and its mirror image: two clusters
    x[13] = rng.normal(size=8) * 3  # a galaxy like neither
    score = similarity.unusualness(x, k=5)
    assert int(np.argmax(score)) == 13
    np.testing.assert_allclose(score, 1 - similarity.nearest(x, 5)[1].mean(1))
