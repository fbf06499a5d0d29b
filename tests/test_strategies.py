"""Acquisition strategies: scores, selection and expected votes against independent references."""

import numpy as np
import pytest

from zoolib.active import acquisition, strategies


def test_bald_picks_exactly_the_top_mutual_information():
    rng = np.random.default_rng(0)
    rho = rng.beta(0.5, 0.5, size=(200, 2, 8))
    score = strategies.scores("bald", rho, [40, 10])
    n = np.broadcast_to(np.array([40.0, 10.0]), (200, 2))
    mi = acquisition.mutual_information(rho, n).sum(axis=1)
    np.testing.assert_allclose(score, mi)
    picks = strategies.select("bald", 200, 15, score, seed=1)
    assert set(picks) == set(np.argsort(-mi)[:15])


def test_entropy_uses_predictive_entropy():
    rho = np.random.default_rng(1).random((50, 1, 5))
    np.testing.assert_allclose(
        strategies.scores("entropy", rho, [20]),
        acquisition.predictive_entropy(rho[:, 0], 20),
    )


def test_power_bald_limits():
    rng = np.random.default_rng(2)
    score = rng.random(300) + 1e-3
    huge = strategies.select("power_bald", 300, 20, score, seed=3, beta=1e6)
    np.testing.assert_array_equal(np.sort(huge), np.sort(np.argsort(-score)[:20]))
    # beta = 0: every id equally likely, whatever the scores
    counts = np.zeros(300)
    skewed = np.where(np.arange(300) < 30, 100.0, 1e-6)
    for s in range(400):
        counts[strategies.select("power_bald", 300, 10, skewed, seed=s, beta=0.0)] += 1
    assert abs(counts[:30].sum() / counts.sum() - 0.1) < 0.03  # 30 of 300 ids -> 10%
    # beta = 1: proportional to MI, so the 30 high-MI ids dominate
    counts[:] = 0
    for s in range(100):
        counts[strategies.select("power_bald", 300, 10, skewed, seed=s, beta=1.0)] += 1
    assert counts[:30].sum() / counts.sum() > 0.99


def test_random_is_seeded_and_unknown_strategy_fails():
    a = strategies.select("random", 100, 10, None, seed=5)
    np.testing.assert_array_equal(a, strategies.select("random", 100, 10, None, seed=5))
    assert not np.array_equal(a, strategies.select("random", 100, 10, None, seed=6))
    with pytest.raises(ValueError, match="unknown strategy"):
        strategies.select("greedy", 100, 10, None, seed=0)


def test_tree_votes_follow_the_decision_tree_by_hand():
    questions = ["bar", "smooth-or-featured", "disk-edge-on"]  # any column order
    mean_rho = np.array([[0.5, 0.2, 0.25],  # N_edge = 40 * 0.8 = 32, N_bar = 32 * 0.75 = 24
                         [0.5, 1.0, 0.0],  # smooth: nobody is asked the later questions
                         [0.5, 0.9, 0.5]])  # 40 * 0.1 = 4, then 4 * 0.5 = 2  # fmt: skip
    n = strategies.tree_votes(mean_rho, questions, [7, 40, 9])
    np.testing.assert_array_equal(n, [[24, 40, 32], [0, 40, 0], [2, 40, 4]])
    # without the parent question the flat N stays
    np.testing.assert_array_equal(strategies.tree_votes(mean_rho[:, :1], ["bar"], [7]), [[7]] * 3)
    # edge-on alone: its parent is there, so it follows smooth-or-featured
    np.testing.assert_array_equal(
        strategies.tree_votes(mean_rho[:, 1:], questions[1:], [40, 9]), [[40, 32], [40, 0], [40, 4]]
    )
    with pytest.raises(ValueError, match="mean_rho"):
        strategies.tree_votes(mean_rho, questions[:2], [7, 40])


def test_random_null_is_random_on_its_own_stream():
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    a = strategies.select("random", 100, 10, None, rng_a)
    np.testing.assert_array_equal(a, strategies.select("random_null", 100, 10, None, rng_b))
    assert strategies.scores("random_null", None, [10]) is None


def test_expected_n_is_checked():
    with pytest.raises(ValueError, match="whole numbers"):
        strategies.expected_n(2.5, np.ones(1), ["bar"])
    with pytest.raises(ValueError, match="does not learn"):
        strategies.expected_n({"bar": 3}, np.ones(1), ["smooth-or-featured"])


def _blobs(k=4, per=30, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=20, size=(k, 5))
    x = np.concatenate([c + rng.normal(size=(per, 5)) for c in centres])
    return x, np.repeat(np.arange(k), per)


def test_kmeans_picks_one_galaxy_per_blob():
    x, blob = _blobs()
    picks = strategies.select("kmeans", len(x), 4, None, np.random.default_rng(0), features=x)
    assert sorted(blob[picks]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="needs the pool's features"):
        strategies.select("kmeans", len(x), 4, None, 0)


def test_diverse_bald_spreads_a_batch_that_bald_would_pile_up():
    x, blob = _blobs()
    score = np.where(blob == 0, 10.0, 1.0) + np.random.default_rng(1).random(len(x))
    bald = strategies.select("bald", len(x), 4, score, 0)
    assert set(blob[bald]) == {0}  # the top four all sit in the high-score blob
    score[blob == 1] += 5  # a second informative blob: the prefilter (40 rows) covers both
    diverse = strategies.select(
        "diverse_bald", len(x), 4, score, np.random.default_rng(0), features=x
    )
    assert {0, 1} <= set(blob[diverse]) and len(set(diverse)) == 4
    assert np.argmax(score) in diverse  # the best galaxy is always among them
    assert np.all(np.diff(score[diverse]) <= 0)  # best first
