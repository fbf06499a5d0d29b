"""The fine-tuning regime on a toy universe of features (no TensorFlow): book-keeping, resume,
the gate, the oracle bound, and a round's head against a head trained afresh."""

import numpy as np
import pandas as pd
import pytest
from scipy import special

from zoolib.active import heads, heads_regime, runs
from zoolib.votes.schema import question

Q = "smooth-or-featured"


def toy(galaxies=900, features=8, seed=0, signal=1.5):
    """Features, and a catalogue whose true p is a logistic function of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(galaxies, features)).astype(np.float32)
    p = special.expit(signal * x[:, :3].sum(axis=1) / np.sqrt(3))
    n = rng.integers(5, 40, size=galaxies)
    split = np.where(
        np.arange(galaxies) % 10 < 6, "train", np.where(np.arange(galaxies) % 10 < 7, "val", "test")
    )
    cat = pd.DataFrame(
        {
            "id_str": [f"g{i}" for i in range(galaxies)],
            "split": split,
            question(Q).yes_column: rng.binomial(n, p),
            question(Q).total_column: n,
            f"true_p_{Q}": p,
        }
    )
    return x, cat


SMALL = dict(
    question=Q,
    n_initial=16,
    acquire_per_round=8,
    n_rounds=3,
    n_seeds=2,
    n_samples=8,
    head=heads.HeadSettings(steps=150),
    oracle_candidates=4,
    strategies=("random", "random_null", "bald", "power_bald", "power_bald_lure", "oracle"),
)


def test_book_keeping_and_resume_after_a_kill_are_identical(tmp_path):
    x, cat = toy()
    settings = runs.Settings(**SMALL)
    full, picks = heads_regime.run(settings, x, cat, [Q], tmp_path / "full", progress=False)
    heads_regime.run(settings, x, cat, [Q], tmp_path / "killed", progress=False, stop_after=11)
    resumed, picks2 = heads_regime.run(settings, x, cat, [Q], tmp_path / "killed", progress=False)
    pd.testing.assert_frame_equal(full, resumed)
    pd.testing.assert_frame_equal(picks, picks2)
    assert settings.runs == ("random", "random_2", "random_3", "random_null", "bald",
                             "power_bald", "power_bald_lure", "oracle")  # fmt: skip
    assert len(full) == 8 * 2 * 4 and sorted(full.n_labelled.unique()) == [16, 24, 32, 40]
    test_ids = set(cat.id_str[cat.split != "train"])  # val and test are never acquired
    for _, rows in picks.groupby(["strategy", "seed"]):
        assert not set(rows.id_str) & test_ids and rows.id_str.is_unique
        assert len(rows) == 3 * 8
    r0 = full[full["round"] == 0].groupby("seed")[f"{Q} rmse_true"].nunique()
    assert (r0 == 1).all()  # round 0 is shared by every strategy of a seed
    rnd, null = (
        set(picks.id_str[(picks.strategy == s) & (picks.seed == 0)])
        for s in ("random", "random_null")
    )
    assert rnd != null  # the null draws its own batches
    streams = [frozenset(picks.id_str[(picks.strategy == s) & (picks.seed == 0)])
               for s in ("random", "random_2", "random_3", "random_null")]  # fmt: skip
    assert len(set(streams)) == 4  # each reference stream draws its own batches


def test_a_round_equals_a_head_trained_afresh_on_the_same_features(tmp_path):
    x, cat = toy()
    settings = runs.Settings(**{**SMALL, "strategies": ("random", "bald"), "n_seeds": 1})
    curves, picks = heads_regime.run(settings, x, cat, [Q], tmp_path, progress=False)
    rounds = runs.read_run(runs.run_file(tmp_path, "bald", 0), _header(settings, cat))
    ids = runs.labelled_after(rounds[:2])  # labelled at round 2
    rows = cat.index[cat.id_str.isin(ids)].to_numpy()
    order = np.argsort([ids.index(i) for i in cat.id_str[rows]])  # the run's order
    rows = rows[order]
    k, n = (
        cat[question(Q).yes_column].to_numpy()[rows, None],
        cat[question(Q).total_column].to_numpy()[rows, None],
    )
    w, b = heads.fit(x[rows][None], k[None], n[None], settings.head, runs.stream(0, 2, "train"))
    test = np.flatnonzero(cat.split == "test")
    rho = heads.sample_rho(x[test], w[0], b[0], 8, 0.5, runs.stream(0, 2, "evaluate")).mean(-1)[
        :, 0
    ]
    expected = np.sqrt(np.mean((rho - cat[f"true_p_{Q}"].to_numpy()[test]) ** 2))
    assert rounds[2]["test"][Q]["rmse_true"] == pytest.approx(expected, rel=1e-12)


def _header(settings, cat):
    return heads_regime.run_header(settings, heads_regime.Data.build(toy()[0], cat, [Q]))


def test_the_oracle_beats_random_on_a_seeded_toy(tmp_path):
    from zoolib.active import savings

    x, cat = toy(signal=3.0)
    settings = runs.Settings(
        **{
            **SMALL,
            "strategies": ("random", "oracle"),
            "n_seeds": 4,
            "oracle_candidates": 8,
            "n_rounds": 4,
        }
    )
    curves, _ = heads_regime.run(settings, x, cat, [Q], tmp_path, progress=False)
    gap = savings.curve_gap(curves, "oracle", f"{Q} rmse_true")
    assert gap["ci_high"] < 0


def test_the_learning_gate_fires_on_features_without_signal(tmp_path):
    x, cat = toy(signal=0.0)
    with pytest.raises(ValueError, match="learning gate: round 0 of seed 0 .* Raise n_initial"):
        heads_regime.run(runs.Settings(**SMALL), x, cat, [Q], tmp_path, progress=False)


def test_real_catalogues_refuse_the_truth_metric_and_the_oracle(tmp_path):
    x, cat = toy()
    real = cat.drop(columns=f"true_p_{Q}")
    with pytest.raises(ValueError, match="metric 'rmse_true' needs the true p"):
        heads_regime.run(runs.Settings(**{**SMALL, "metric": "rmse_true"}), x, real, [Q],
                         tmp_path, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="oracle needs the true p"):
        heads_regime.run(
            runs.Settings(**{**SMALL, "metric": "rmse"}), x, real, [Q], tmp_path, progress=False
        )


def test_resuming_with_other_settings_is_refused(tmp_path):
    x, cat = toy()
    settings = runs.Settings(**{**SMALL, "strategies": ("random",), "n_seeds": 1})
    heads_regime.run(settings, x, cat, [Q], tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"other settings \(settings\.n_rounds: "):
        heads_regime.run(
            runs.Settings(**{**SMALL, "strategies": ("random",), "n_seeds": 1, "n_rounds": 2}),
            x,
            cat,
            [Q],
            tmp_path,
            progress=False,
        )


def test_pool_scores_reproduce_what_bald_ranked_by(tmp_path):
    x, cat = toy()
    settings = runs.Settings(**{**SMALL, "strategies": ("random", "bald"), "n_seeds": 1})
    heads_regime.run(settings, x, cat, [Q], tmp_path, progress=False)
    rounds = runs.read_run(runs.run_file(tmp_path, "bald", 0), _header(settings, cat))
    scored = heads_regime.pool_scores(settings, x, cat, [Q], tmp_path, "bald", 0, 1)
    scored = scored.set_index("id_str")
    picked = rounds[1]["acquired"]
    np.testing.assert_allclose(scored.loc[picked, "mi"], rounds[1]["scores"], rtol=1e-10)
    assert set(picked) == set(scored["mi"].nlargest(len(picked)).index)


def test_every_finetune_strategy_runs_and_ensemble_samples_are_bootstrap_heads(tmp_path):
    x, cat = toy()
    views = np.stack([x * (1 + 0.01 * v) for v in range(8)])
    every = (
        "random",
        "bald",
        "bald_views",
        "bald_ensemble",
        "power_bald",
        "entropy",
        "kmeans",
        "diverse_bald",
        "epig",
        "power_epig",
        "variance",
        "power_bald_lure",
        "power_epig_lure",
    )
    settings = runs.Settings(**{**SMALL, "strategies": every, "n_seeds": 1, "n_rounds": 2,
                                "random_streams": 1})  # fmt: skip
    curves, picks = heads_regime.run(settings, x, cat, [Q], tmp_path, views=views, progress=False)
    assert picks.groupby("strategy").id_str.nunique().to_dict() == {s: 16 for s in every}
    assert curves[f"{Q} rmse_true"].notna().all()


def test_bald_views_without_views_is_refused_before_any_run(tmp_path):
    x, cat = toy()
    settings = runs.Settings(**{**SMALL, "strategies": ("random", "bald_views")})
    with pytest.raises(ValueError, match="'bald_views' needs views="):
        heads_regime.run(settings, x, cat, [Q], tmp_path, progress=False)
    assert not list(tmp_path.glob("*.json"))


def test_other_data_under_the_same_settings_is_refused(tmp_path):
    x, cat = toy()
    settings = runs.Settings(**{**SMALL, "strategies": ("random",), "n_seeds": 1})
    heads_regime.run(settings, x, cat, [Q], tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"other settings \(data: "):
        heads_regime.run(settings, x * 1.01, cat, [Q], tmp_path, progress=False)  # new features


def test_lure_runs_record_their_pick_probabilities_and_train_on_their_weights(tmp_path):
    x, cat = toy()
    settings = runs.Settings(**{**SMALL, "strategies": ("random", "power_bald", "power_bald_lure"),
                                "n_seeds": 1, "random_streams": 1})  # fmt: skip
    curves, picks = heads_regime.run(settings, x, cat, [Q], tmp_path, progress=False)
    header = _header(settings, cat)
    lure = runs.read_run(runs.run_file(tmp_path, "power_bald_lure", 0), header)
    plain = runs.read_run(runs.run_file(tmp_path, "power_bald", 0), header)
    # the same stream picks the same first batch; only LURE records its probabilities
    assert lure[0]["acquired"] == plain[0]["acquired"] and "probabilities" not in plain[0]
    q = np.array(lure[0]["probabilities"])
    n_pool = int((cat.split == "train").sum())
    assert len(q) == 8 and np.all((q > 0) & (q < 1))
    assert not np.allclose(q, 1 / (n_pool - 16 - np.arange(8)))  # not uniform: MI-weighted
    # round 1 of the LURE run differs (weighted training), its round 0 does not
    a, b = (curves[(curves.strategy == s)].set_index("round")[f"{Q} nll"]
            for s in ("power_bald", "power_bald_lure"))  # fmt: skip
    assert a[0] == b[0] and a[1] != b[1]


def test_what_mi_tracks_against_a_direct_computation():
    from scipy import stats

    rng = np.random.default_rng(5)
    g = 200
    scored = pd.DataFrame({"mi bar": rng.random(g), "rho bar": rng.uniform(0.1, 0.9, g),
                           "n bar": rng.integers(1, 30, g), "true_p_bar": rng.uniform(0.1, 0.9, g),
                           "brightness": rng.random(g), "redshift": rng.uniform(0.02, 0.12, g),
                           "morphology": rng.choice(["smooth", "featured"], g)})  # fmt: skip
    table = heads_regime.what_mi_tracks(scored, ["bar"]).loc["bar"]
    p, r = scored.true_p_bar, scored["rho bar"]
    kl = p * np.log(p / r) + (1 - p) * np.log((1 - p) / (1 - r))
    assert table["Spearman(MI, true excess loss)"] == pytest.approx(
        stats.spearmanr(scored["mi bar"], scored["n bar"] * kl)[0])
    top = scored["mi bar"].rank(ascending=False) <= 20
    assert table["featured share, top 10% MI"] == pytest.approx(
        (scored.morphology[top] == "featured").mean())
    assert table["median z, pool"] == pytest.approx(scored.redshift.median())
    real = heads_regime.what_mi_tracks(scored.drop(columns="true_p_bar"), ["bar"])
    assert list(real.columns) == ["Spearman(MI, brightness)"]
