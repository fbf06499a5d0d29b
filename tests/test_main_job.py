"""The main job in miniature: notebooks 01 -> 04 with the ci parameters, via the runner."""

import math

import pytest
from jobs import metrics, outputs_root, written

from zoolib import paths
from zoolib.reports import runner

pytestmark = pytest.mark.slow  # all four notebooks (about 3 minutes on 2 cores); test-fast skips it


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    before = written(paths.PROJECT_ROOT)
    with outputs_root(root):
        done = runner.run("ci", only=["01", "02", "03", "04"], reports_dir=root / "reports")
    assert written(paths.PROJECT_ROOT) == before  # nothing new or changed inside the checkout
    return root, done


def test_reports_and_index_are_written(ci_run):
    root, done = ci_run
    assert [p.name for p in done] == [
        "01_data_prep.html",
        "02_train.html",
        "03_dropout_posteriors.html",
        "04_active_learning.html",
    ]
    for page in done:
        assert page.stat().st_size > 50_000  # figures are embedded
    index = (root / "reports" / "index.html").read_text()
    assert all(f"html/{p.name}" in index for p in done)
    # key metrics on the index page: 02's CNN / baseline table, 03's coverages, 04's curve gaps
    assert "cnn / baseline" in index and "coverage@80%" in index and "curve gap" in index
    assert all((root / "reports" / "html" / "thumbs" / f"{p.stem}.png").is_file() for p in done)
    assert (root / "models" / "ci.keras").is_file()
    # the ci set is a smoke test: banners on the index and every report, no significance colours
    assert "SMOKE TEST: these numbers are not results." in index
    assert "class=good" not in index and "class=bad" not in index
    assert all("SMOKE TEST: these numbers are not results." in p.read_text() for p in done)


def test_training_metrics_are_sane_and_beat_the_baseline(ci_run):
    root, _ = ci_run
    m = metrics(root, "02_train")
    assert m["questions"] == ["smooth-or-featured", "disk-edge-on", "bar"]
    for label in ("cnn", "baseline"):
        for name, row in m["test"][label].items():
            assert math.isfinite(row["nll"]) and row["nll"] > 0, (label, name)
            assert 0 <= row["rmse"] <= 1 and 0 <= row["rmse_true"] <= 1, (label, name)
    cnn, base = m["test"]["cnn"]["smooth-or-featured"], m["test"]["baseline"]["smooth-or-featured"]
    assert cnn["nll"] < base["nll"]  # the pretrained start or what beat it
    epochs = runner.load_params("ci")["02_train"]["epochs"]
    assert len(m["history"]["loss"]) == m["epochs_run"] <= epochs
    assert all(math.isfinite(v) for key in ("loss", "val_loss") for v in m["history"][key])


def test_posterior_metrics_are_in_range(ci_run):
    root, _ = ci_run
    m = metrics(root, "03_dropout_posteriors")
    for name, row in m["questions"].items():
        for kind in ("coverage_mc", "coverage_single"):
            values = [row[kind][lv] for lv in ("0.5", "0.8", "0.95")]
            assert all(0 <= v <= 1 for v in values), (name, kind)
            assert values == sorted(values)  # wider intervals cover at least as much
        # the mixture is never narrower than one of its components on average: it covers more
        assert row["coverage_mc"]["0.95"] >= row["coverage_single"]["0.95"] - 0.02
        assert math.isfinite(row["nll_mc"]) and math.isfinite(row["nll_single"])
    over = m["beta_binomial"]
    assert set(over["concentration_mc"]) == set(m["questions"])
    assert all(v is None or v > 0 for v in over["concentration_mc"].values())
    for name, row in over["questions"].items():
        # fitted on the validation split, the beta-binomial is at least as likely on the test
        # votes up to small-sample noise (1,000-galaxy ci universe, 200 test galaxies)
        assert row["nll_mc"] <= m["questions"][name]["nll_mc"] + 0.05
        values = [row["randomized_mc"][lv] for lv in ("0.5", "0.8", "0.95")]
        assert values == sorted(values) and all(0 <= v <= 1 for v in values)


def test_active_learning_metrics(ci_run):
    root, _ = ci_run
    m = metrics(root, "04_active_learning")
    strategies = ["random", "random_null", "bald", "power_bald", "oracle"]
    assert m["strategies"] == strategies and m["n_seeds"] == 2 and m["regime"] == "finetune"
    curves = m["curves"]
    runs_of_a_seed = strategies[:1] + ["random_2", "random_3"] + strategies[1:]  # the reference
    assert len(curves["n_labelled"]) == 7 * 2 * 3  # runs x seeds x (rounds + 1)
    assert set(curves["n_labelled"]) == {16, 24, 32} and m["column"] == "all rmse_asked"
    assert all(math.isfinite(v) for v in curves["all rmse_true"] + curves["all rmse_asked"])
    # the shape: savings {strategy: {target: {...}}}, curve_gap {strategy: {...}}
    assert set(m["savings"]) == set(m["curve_gap"]) == set(strategies) - {"random"}
    for per_target in m["savings"].values():
        assert set(per_target) == {"25%", "50%", "75%"}
        for v in per_target.values():
            assert {"saving", "ci_low", "ci_high", "n_seeds", "n_censored"} <= set(v)
            assert v["ci_low"] <= v["saving"] <= v["ci_high"] and v["n_seeds"] == 2
    for g in m["curve_gap"].values():
        assert g["ci_low"] <= g["mean"] <= g["ci_high"]
    picked = dict(zip(m["what_gets_picked"]["strategy"], m["what_gets_picked"]["galaxies"],
                      strict=True))  # fmt: skip
    # 2 seeds x 2 rounds x 8 per run; random's three streams pooled as one fair sample
    assert picked == {**{s: 32 for s in strategies}, "random": 96, "pool": 700}
    assert all(0 <= v <= 1 for v in m["what_gets_picked"]["featured_share"])
    assert m["mi_tracks"]["question"] == ["smooth-or-featured", "disk-edge-on", "bar"]
    assert "bald curve gap" in m["summary"]
    (runs,) = (root / "data" / "runs").glob("ci-finetune-*")  # one settings digest
    assert sorted(p.name for p in runs.iterdir()) == sorted(
        f"{s}-seed{seed}.json" for s in runs_of_a_seed for seed in (0, 1)
    )
