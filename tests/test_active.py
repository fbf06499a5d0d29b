import numpy as np
import pandas as pd
import pytest

from zoolib import acquisition, active, data, synthetic


def test_bald_picks_exactly_the_top_mutual_information():
    rng = np.random.default_rng(0)
    rho = rng.beta(0.5, 0.5, size=(200, 2, 8))
    score = active.scores("bald", rho, [40, 10])
    n = np.broadcast_to(np.array([40.0, 10.0]), (200, 2))
    mi = acquisition.mutual_information(rho, n).sum(axis=1)
    np.testing.assert_allclose(score, mi)
    picks = active.select("bald", 200, 15, score, seed=1)
    assert set(picks) == set(np.argsort(-mi)[:15])


def test_entropy_uses_predictive_entropy():
    rho = np.random.default_rng(1).random((50, 1, 5))
    np.testing.assert_allclose(
        active.scores("entropy", rho, [20]),
        acquisition.predictive_entropy(rho[:, 0], 20),
    )


def test_power_bald_limits():
    rng = np.random.default_rng(2)
    score = rng.random(300) + 1e-3
    huge = active.select("power_bald", 300, 20, score, seed=3, beta=1e6)
    np.testing.assert_array_equal(np.sort(huge), np.sort(np.argsort(-score)[:20]))
    # beta = 0: every id equally likely, whatever the scores
    counts = np.zeros(300)
    skewed = np.where(np.arange(300) < 30, 100.0, 1e-6)
    for s in range(400):
        counts[active.select("power_bald", 300, 10, skewed, seed=s, beta=0.0)] += 1
    assert abs(counts[:30].sum() / counts.sum() - 0.1) < 0.03  # 30 of 300 ids -> 10%
    # beta = 1: proportional to MI, so the 30 high-MI ids dominate
    counts[:] = 0
    for s in range(100):
        counts[active.select("power_bald", 300, 10, skewed, seed=s, beta=1.0)] += 1
    assert counts[:30].sum() / counts.sum() > 0.99


def test_random_is_seeded_and_unknown_strategy_fails():
    a = active.select("random", 100, 10, None, seed=5)
    np.testing.assert_array_equal(a, active.select("random", 100, 10, None, seed=5))
    assert not np.array_equal(a, active.select("random", 100, 10, None, seed=6))
    with pytest.raises(ValueError, match="unknown strategy"):
        active.select("greedy", 100, 10, None, seed=0)


def test_oracle_reveals_only_what_is_asked():
    cat = pd.DataFrame({"id_str": ["a", "b", "c"], "bar_yes": [1, 2, 3]})
    oracle = active.Oracle(cat)
    assert oracle.label(["c", "a"])["bar_yes"].tolist() == [3, 1]
    assert oracle.revealed == {"a", "c"}
    with pytest.raises(KeyError, match="zz"):
        oracle.label(["zz"])


@pytest.fixture(scope="module")
def universe():
    images, cat = synthetic.simulate(160, size=32, seed=4)
    cat["split"] = data.assign_splits(len(cat), (0.75, 0.0, 0.25), seed=0)
    return images, cat


SETTINGS = dict(
    questions=["smooth-or-featured"], n_initial=12, acquire_per_round=8, n_rounds=2,
    epochs_per_round=1, n_samples=4, batch_size=16, progress=False,
)  # fmt: skip


@pytest.mark.parametrize("strategy, warm", [("bald", False), ("random", True)])
def test_book_keeping_and_resume_after_a_kill(tmp_path, universe, strategy, warm):
    images, cat = universe
    settings = {**SETTINGS, "strategy": strategy, "warm_start": warm, "seed": 1}
    full = active.simulate(tmp_path / "full", images, cat, **settings)
    active.simulate(tmp_path / "killed", images, cat, stop_after=0, **settings)
    assert len(active.history(tmp_path / "killed")) == 1
    resumed = active.simulate(tmp_path / "killed", images, cat, **settings)
    pd.testing.assert_frame_equal(full, resumed)
    rounds = [active._completed_rounds(tmp_path / d) for d in ("full", "killed")]
    for a, b in zip(*rounds, strict=True):
        assert a["labelled"] == b["labelled"] and a["acquired"] == b["acquired"]
    test_ids = set(cat.loc[cat["split"] == "test", "id_str"])
    seen = set()
    for rec in rounds[0]:
        assert rec["n_labelled"] == 12 + 8 * rec["round"] == len(set(rec["labelled"]))
        assert not (set(rec["labelled"]) | set(rec["acquired"])) & test_ids  # test never touched
        assert not set(rec["acquired"]) & set(rec["labelled"])  # no id acquired twice
        seen |= set(rec["acquired"])
    assert len(seen) == 16
    assert list(full["n_labelled"]) == [12, 20, 28]
    assert np.isfinite(full["smooth-or-featured nll"]).all()


def test_too_many_acquisitions_is_refused(tmp_path, universe):
    images, cat = universe
    settings = {**SETTINGS, "n_rounds": 50}
    with pytest.raises(ValueError, match="exceeds the 120 non-test ids"):
        active.simulate(tmp_path, images, cat, strategy="bald", **settings)


def test_labels_to_reach_interpolates_against_a_hand_computed_curve():
    n = [100, 200, 300, 400]
    nll = [10.0, 8.0, 7.0, 6.5]
    assert active.labels_to_reach(n, nll, 7.5) == pytest.approx(250.0)
    assert active.labels_to_reach(n, nll, 11.0) == 100.0
    assert np.isnan(active.labels_to_reach(n, nll, 6.0))
    with pytest.raises(ValueError, match="increase"):
        active.labels_to_reach([1, 1], [2, 1], 1.5)


def test_label_saving():
    n = [100, 200, 300, 400]
    random = [10.0, 9.0, 8.0, 7.0]  # target 7.0, reached at 400 labels
    bald = [10.0, 8.0, 7.0, 6.0]  # reaches 7.0 at 300 labels: 25% fewer
    assert active.label_saving(n, bald, n, random) == pytest.approx(0.25)
    assert active.label_saving(n, random, n, random) == pytest.approx(0.0)
    worse = [10.0, 9.5, 9.0, 8.0]
    assert np.isnan(active.label_saving(n, worse, n, random))
