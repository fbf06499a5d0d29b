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


@pytest.mark.slow
@pytest.mark.parametrize("strategy, warm", [("bald", False), ("random", True)])
def test_book_keeping_and_resume_after_a_kill(tmp_path, universe, strategy, warm):
    images, cat = universe
    settings = {**SETTINGS, "strategy": strategy, "warm_start": warm, "seed": 1}
    full = active.simulate(tmp_path / "full", images, cat, **settings)
    active.simulate(tmp_path / "killed", images, cat, stop_after=0, **settings)
    assert len(active.history(tmp_path / "killed")) == 1
    resumed = active.simulate(tmp_path / "killed", images, cat, **settings)
    pd.testing.assert_frame_equal(full, resumed)
    rounds = [active.completed_rounds(tmp_path / d) for d in ("full", "killed")]
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


def test_label_saving():
    n = [100, 200, 300, 400]
    random = [10.0, 9.0, 8.0, 7.0]  # target 7.0, reached at 400 labels
    bald = [10.0, 8.0, 7.0, 6.0]  # reaches 7.0 at 300 labels: 25% fewer
    assert active.label_saving(n, bald, n, random) == pytest.approx(0.25)
    assert active.label_saving(n, random, n, random) == pytest.approx(0.0)
    worse = [10.0, 9.5, 9.0, 8.0]
    assert np.isnan(active.label_saving(n, worse, n, random))


def _curve(strategy, seed, nll):
    return pd.DataFrame({"strategy": strategy, "seed": seed, "n_labelled": [100, 200, 300, 400],
                         "smooth-or-featured nll": nll})  # fmt: skip


def test_savings_per_seed_and_summary_keep_seeds_that_never_reach():
    curves = pd.concat([
        _curve("random", 0, [10.0, 9.0, 8.0, 7.0]),  # target 7.0 at 400
        _curve("bald", 0, [10.0, 8.0, 7.0, 6.0]),  # 300 -> saves 25%
        _curve("random", 1, [10.0, 8.0, 7.0, 6.0]),  # target 6.0 at 400
        _curve("bald", 1, [9.0, 7.0, 6.0, 5.0]),  # 200 + 100 * (7 - 6) / (7 - 6) = 300 -> 25%
        _curve("random", 2, [10.0, 9.0, 8.0, 6.0]),  # target 6.0 at 400
        _curve("bald", 2, [10.0, 9.5, 8.0, 7.0]),  # never: saving < 1 - 400 / 400 = 0
    ])  # fmt: skip
    table = active.savings(curves, "smooth-or-featured nll")
    bald = table[table.strategy == "bald"].set_index("seed")
    assert bald.reached.tolist() == [True, True, False]
    np.testing.assert_allclose(bald.saving[[0, 1]], [0.25, 0.25])
    assert np.isnan(bald.saving[2]) and bald.saving_bound[2] == 0.0
    assert (table[table.strategy == "random"].saving == 0).all()
    summary = active.summarise_savings(table)
    assert summary.loc["bald", "reached"] == 2 and summary.loc["bald", "seeds"] == 3
    assert summary.loc["bald", "mean"] == pytest.approx(0.25)
    assert "2 of 3 seeds" in summary.loc["bald", "summary"]
    assert "< 0%" in summary.loc["bald", "summary"]
    assert "all 3 seeds" in summary.loc["random", "summary"]
    with pytest.raises(ValueError, match="random"):
        active.savings(curves[curves.strategy == "bald"], "smooth-or-featured nll")


def test_resuming_with_other_settings_is_refused(tmp_path, universe):
    images, cat = universe
    settings = {**SETTINGS, "strategy": "random", "n_rounds": 1}
    active.simulate(tmp_path, images, cat, stop_after=0, **settings)
    with pytest.raises(ValueError, match=r"epochs_per_round: 1 -> 2"):
        active.simulate(tmp_path, images, cat, **{**settings, "epochs_per_round": 2})
    other = cat.assign(split=np.where(cat.split == "test", "train", "test"))
    with pytest.raises(ValueError, match="catalog"):
        active.simulate(tmp_path, images, other, **settings)
    assert len(active.history(tmp_path)) == 1  # nothing was added by the refused calls


def test_acquire_on_one_question_and_pool_scores_reproduce_the_run(tmp_path, universe):
    images, cat = universe
    questions = ["smooth-or-featured", "disk-edge-on", "bar"]
    settings = {**SETTINGS, "questions": questions, "n_rounds": 1, "strategy": "bald",
                "acquire_on": ["bar"], "expected_n": {"bar": 7}}  # fmt: skip
    active.simulate(tmp_path, images, cat, **settings)
    rec = active.completed_rounds(tmp_path)[0]
    labelled = cat[cat.id_str.isin(rec["labelled"])]
    mean_n = labelled["smooth-or-featured_total-votes"].mean()
    assert rec["expected_n"][2] == 7.0 and rec["expected_n"][0] == round(mean_n)  # labelled mean
    scored = active.pool_scores(tmp_path, 0, images, cat)
    # the pool is every non-test galaxy not yet labelled, in catalogue order
    pool = cat[(cat.split != "test") & ~cat.id_str.isin(rec["labelled"])]
    assert scored.id_str.tolist() == pool.id_str.tolist()
    # the run ranked by the bar question's MI alone, and picked exactly its top 8
    np.testing.assert_allclose(scored.score, scored["mi bar"])
    top = scored.nlargest(8, "score")
    assert set(top.id_str) == set(rec["acquired"])
    np.testing.assert_allclose(sorted(top.score), sorted(rec["scores"]))
    assert not np.allclose(scored["mi bar"], scored["mi smooth-or-featured"])
    with pytest.raises(ValueError, match="last one"):
        active.pool_scores(tmp_path, 1, images, cat)
    with pytest.raises(ValueError, match="subset"):
        active.simulate(tmp_path / "x", images, cat, **{**settings, "acquire_on": ["spiral"]})
    with pytest.raises(ValueError, match="whole numbers"):
        active.simulate(tmp_path / "y", images, cat, **{**settings, "expected_n": {"bar": 2.5}})


@pytest.mark.slow
def test_sharing_round_zero_gives_the_same_run(tmp_path, universe):
    images, cat = universe
    settings = {**SETTINGS, "n_rounds": 1, "warm_start": True, "initial_epochs": 2, "seed": 3}
    active.simulate(tmp_path / "random", images, cat, strategy="random", **settings)
    alone = active.simulate(tmp_path / "alone", images, cat, strategy="bald", **settings)
    shared = active.simulate(tmp_path / "shared", images, cat, strategy="bald",
                             initial_from=tmp_path / "random", **settings)  # fmt: skip
    pd.testing.assert_frame_equal(alone, shared)
    assert [r["acquired"] for r in active.completed_rounds(tmp_path / "alone")] == [
        r["acquired"] for r in active.completed_rounds(tmp_path / "shared")
    ]
    with pytest.raises(ValueError, match="initial_epochs"):
        other = {**settings, "initial_epochs": 1}
        active.simulate(tmp_path / "other", images, cat, strategy="bald",
                        initial_from=tmp_path / "random", **other)  # fmt: skip


def test_tree_votes_follow_the_decision_tree_by_hand():
    questions = ["bar", "smooth-or-featured", "disk-edge-on"]  # any column order
    mean_rho = np.array([[0.5, 0.2, 0.25],  # N_edge = 40 * 0.8 = 32, N_bar = 32 * 0.75 = 24
                         [0.5, 1.0, 0.0],  # smooth: nobody is asked the later questions
                         [0.5, 0.9, 0.5]])  # 40 * 0.1 = 4, then 4 * 0.5 = 2  # fmt: skip
    n = active.tree_votes(mean_rho, questions, [7, 40, 9])
    np.testing.assert_array_equal(n, [[24, 40, 32], [0, 40, 0], [2, 40, 4]])
    # without the parent question the flat N stays
    np.testing.assert_array_equal(active.tree_votes(mean_rho[:, :1], ["bar"], [7]), [[7]] * 3)
    # edge-on alone: its parent is there, so it follows smooth-or-featured
    np.testing.assert_array_equal(
        active.tree_votes(mean_rho[:, 1:], questions[1:], [40, 9]), [[40, 32], [40, 0], [40, 4]]
    )
    with pytest.raises(ValueError, match="mean_rho"):
        active.tree_votes(mean_rho, questions[:2], [7, 40])


def test_tree_expected_n_is_what_the_run_ranked_by(tmp_path, universe):
    images, cat = universe
    questions = ["smooth-or-featured", "disk-edge-on", "bar"]
    settings = {**SETTINGS, "questions": questions, "n_rounds": 1, "strategy": "bald",
                "acquire_on": ["bar"], "expected_n_tree": True}  # fmt: skip
    active.simulate(tmp_path, images, cat, **settings)
    rec = active.completed_rounds(tmp_path)[0]
    scored = active.pool_scores(tmp_path, 0, images, cat)
    # recompute independently: same samples (same seed), per-galaxy N from the tree, MI by scipy
    from scipy import stats

    from zoolib import models, posteriors

    pos = cat.index[cat.id_str.isin(scored.id_str)].to_numpy()
    model = models.load_model(active.round_file(tmp_path, 0, ".keras"))
    rho = posteriors.sample_rho(model, images[pos], rec["config"]["n_samples"], seed=rec["seed"])
    n_flat = rec["expected_n"]
    for g in range(0, len(pos), 7):
        m = rho[g].mean(axis=-1)
        n_bar = int(np.rint(n_flat[0] * (1 - m[0]) * (1 - m[1])))
        pmf = stats.binom.pmf(np.arange(n_bar + 1)[None, :], n_bar, rho[g, 2][:, None])
        mi = stats.entropy(pmf.mean(axis=0)) - np.mean([stats.entropy(p) for p in pmf])
        assert scored.score.iloc[g] == pytest.approx(mi, abs=1e-9)
    assert set(scored.nlargest(8, "score").id_str) == set(rec["acquired"])
