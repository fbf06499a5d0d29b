"""Savings statistics (zoolib.active.savings) on simulated learning curves with a known answer."""

import numpy as np
import pandas as pd
import pytest

from zoolib.active import savings

SIZES = np.arange(64, 64 + 16 * 32, 32)  # 16 rounds


def _curves(rng, strategies: dict, n_seeds: int, noise: float = 0.01) -> pd.DataFrame:
    """Falling curves 0.3 + 0.1 exp(-n / scale) plus independent noise per seed and round;
    ``strategies`` maps a name to its label efficiency (1: random; 2: needs half the labels)."""
    rows = []
    for name, efficiency in strategies.items():
        for s in range(n_seeds):
            shared = rng.normal(0, noise)  # a seed's own level, e.g. its test set
            for n in SIZES:
                m = 0.3 + 0.1 * np.exp(-efficiency * (n - 64) / 200) + shared
                rows.append({"strategy": name, "seed": s, "n_labelled": n,
                             "m": m + rng.normal(0, noise / 2)})  # fmt: skip
    return pd.DataFrame(rows)


def test_labels_to_reach_interpolates_against_a_hand_computed_curve():
    n, m = [100, 200, 300, 400], [10.0, 8.0, 7.0, 6.5]
    assert savings.labels_to_reach(n, m, 7.5) == pytest.approx(250.0)
    assert savings.labels_to_reach(n, m, 9.0) == pytest.approx(150.0)
    assert savings.labels_to_reach(n, m, 11.0) == 100.0
    assert np.isnan(savings.labels_to_reach(n, m, 6.0))  # never reached: censored
    with pytest.raises(ValueError, match="increase"):
        savings.labels_to_reach([1, 1], [2, 1], 1.5)


def test_a_known_saving_is_recovered_with_an_interval_around_it():
    """A strategy twice as label-efficient needs half the labels beyond the initial 64: at the
    target random reaches at n_r, it needs 64 + (n_r - 64) / 2."""
    rng = np.random.default_rng(0)
    curves = _curves(rng, {"random": 1.0, "fast": 2.0}, n_seeds=20, noise=0.002)
    result = savings.saving_at(curves, "fast", "m", savings.targets(curves, "m", [0.5])[0.5])
    assert result["ci_low"] < result["saving"] < result["ci_high"]
    n_r = SIZES[0] + 0.5 * (SIZES[-1] - SIZES[0])
    exact = 1 - (SIZES[0] + (n_r - SIZES[0]) / 2) / n_r
    assert result["saving"] == pytest.approx(exact, abs=0.03) and result["ci_low"] > 0.3
    gap = savings.curve_gap(curves, "fast", "m")
    assert gap["ci_high"] < 0 and gap["n_seeds"] == 20


def test_estimators_are_centred_on_zero_under_the_null_with_nominal_intervals():
    """Two strategies with the same curve distribution: the savings and the curve gap average
    within 2 points (of a saving) of zero, and their 95% intervals cover zero about 95% of
    the time (over 300 simulated experiments of 20 seeds)."""
    rng = np.random.default_rng(1)
    found = {"saving 50%": [], "saving 100%": [], "gap": []}
    cover = {k: [] for k in found}
    for _ in range(300):
        curves = _curves(rng, {"random": 1.0, "random_null": 1.0}, n_seeds=20)
        goals = savings.targets(curves, "m", [0.5, 1.0])
        for f, key in ((0.5, "saving 50%"), (1.0, "saving 100%")):
            r = savings.saving_at(curves, "random_null", "m", goals[f])
            found[key].append(r["saving"])
            cover[key].append(r["ci_low"] <= 0 <= r["ci_high"])
        g = savings.curve_gap(curves, "random_null", "m")
        found["gap"].append(g["mean"])
        cover["gap"].append(g["ci_low"] <= 0 <= g["ci_high"])
    assert abs(np.mean(found["saving 50%"])) < 0.02
    assert abs(np.mean(found["saving 100%"])) < 0.02
    assert abs(np.mean(found["gap"])) < 0.001
    for key, hits in cover.items():
        assert 0.90 <= np.mean(hits) <= 0.99, (key, np.mean(hits))


def test_censored_seeds_are_kept_and_counted():
    rng = np.random.default_rng(2)
    curves = _curves(rng, {"random": 1.0, "slow": 0.3}, n_seeds=10, noise=0.001)
    r = savings.saving_at(curves, "slow", "m", savings.targets(curves, "m", [1.0])[1.0])
    assert r["n_seeds"] == 10 and r["n_censored"] == 10  # never reaches random's final point
    assert r["saving"] <= 0  # an upper bound: it needs more than the whole budget


def test_summary_shape_names_every_strategy_but_random():
    rng = np.random.default_rng(3)
    curves = _curves(rng, {"random": 1.0, "random_null": 1.0, "bald": 1.5}, n_seeds=6)
    saves, gaps = savings.summary(curves, "m")
    assert set(saves) == set(gaps) == {"random_null", "bald"}
    assert set(saves["bald"]) == {"25%", "50%", "100%"}
    assert set(saves["bald"]["50%"]) == {"saving", "ci_low", "ci_high", "n_seeds", "n_censored",
                                         "n_censored_random"}  # fmt: skip


def test_the_reference_is_the_mean_of_randoms_streams_and_steadies_the_floor():
    """With random_2 and random_3 in the curves every gap is taken against their seed-by-seed
    mean with random (computed by hand here), the null is not part of it, and the floor's
    spread over seeds is smaller than against one random stream."""
    rng = np.random.default_rng(4)
    names = {"random": 1.0, "random_2": 1.0, "random_3": 1.0, "random_null": 1.0, "fast": 2.0}
    curves = _curves(rng, names, n_seeds=30)
    assert savings.reference_runs(curves) == ["random", "random_2", "random_3"]
    mats = [savings.curve_matrix(curves, s, "m")[1] for s in ("random", "random_2", "random_3")]
    ours = savings.curve_matrix(curves, "fast", "m")[1]
    by_hand = (ours[:, 1:] - np.mean(mats, axis=0)[:, 1:]).mean(axis=1)
    gap = savings.curve_gap(curves, "fast", "m")
    np.testing.assert_allclose(gap["per_seed"], by_hand)
    saves, gaps = savings.summary(curves, "m")
    assert set(gaps) == {"random_null", "fast"}  # the reference's own runs are not rows
    spread = np.std(gaps["random_null"]["per_seed"])
    single = np.std(savings.curve_gap(curves.query("strategy != ['random_2', 'random_3']"),
                                      "random_null", "m")["per_seed"])  # fmt: skip
    assert spread < single  # one stream against one: more luck in every gap


def _gap(mean, low, high, n=20):
    return {"mean": mean, "ci_low": low, "ci_high": high, "n_seeds": n}


def _saves(*values):
    return {f"{t}%": {"saving": v, "ci_low": v - 0.1, "ci_high": v + 0.1}
            for t, v in zip((25, 50, 75), values, strict=True)}  # fmt: skip


def test_verdicts_say_too_few_seeds_and_qualify_better_with_negative_savings():
    assert "too few for an interval" in savings.verdict(_gap(-0.02, -0.03, -0.01, n=2))
    assert "better than random" not in savings.verdict(_gap(-0.02, -0.03, -0.01, n=2))
    assert savings.verdict(_gap(-0.01, -0.02, -0.005), _saves(0.2, 0.3, 0.3)).startswith(
        "better than random")
    mixed = savings.verdict(_gap(-0.01, -0.02, -0.005), _saves(-0.01, 0.3, 0.3))
    assert "better than random" not in mixed and "25%: -1%" in mixed
    assert savings.verdict(_gap(0.01, 0.005, 0.02)).startswith("worse than random")
    assert savings.verdict(_gap(0.0, -0.01, 0.01)).startswith("not distinguishable")


def test_the_conclusion_measures_headroom_against_the_best_rule_not_bald():
    gaps = {"random_null": _gap(0.0, -0.001, 0.001), "bald": _gap(-0.0217, -0.03, -0.01),
            "power_bald": _gap(-0.001, -0.002, 0.0), "oracle": _gap(-0.0037, -0.005, -0.002)}
    saves = {s: _saves(0.1, 0.1, 0.1) for s in gaps}
    text = "\n".join(savings.conclusion(saves, gaps, "all rmse_asked", [32, 512]))
    assert "best rule, bald (-0.0217), does better than the oracle (-0.0037)" in text
    assert "noise floor's interval covers zero" in text
    gaps["bald"] = _gap(-0.0012, -0.002, -0.001)
    text = "\n".join(savings.conclusion(saves, gaps, "all rmse_asked", [32, 512]))
    assert "the best rule, bald (-0.0012), reaches 32% of it" in text
    gaps["bald"] = _gap(0.002, 0.001, 0.003)
    gaps["power_bald"] = _gap(0.001, 0.0, 0.002)
    text = "\n".join(savings.conclusion(saves, gaps, "all rmse_asked", [32, 512]))
    assert "no rule tried reaches any of (the best: power_bald" in text
    few = {s: {**g, "n_seeds": 2} for s, g in gaps.items()}
    text = "\n".join(savings.conclusion(saves, few, "all rmse_asked", [32, 512]))
    assert "noise floor" not in text and text.count("too few for an interval") == 4


def test_a_curve_that_rises_again_is_called_out_and_a_falling_one_is_not():
    rng = np.random.default_rng(0)
    falling = _curves(rng, {"random": 1.0, "random_null": 1.0}, n_seeds=6)
    assert savings.not_falling(falling, "m") is None
    rising = falling.copy()
    late = rising["n_labelled"] > 200
    rising.loc[late, "m"] += 0.0002 * (rising.loc[late, "n_labelled"] - 200)  # up to +0.06
    text = savings.not_falling(rising, "m")
    assert text is not None and "does not keep falling" in text
    gaps = {"random_null": _gap(0.0, -0.001, 0.001)}
    lines = savings.conclusion({"random_null": _saves(0.1, 0.1, 0.1)}, gaps, "m", [64, 544],
                               rising)  # fmt: skip
    assert lines[-1] == text
