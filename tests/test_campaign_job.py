"""Notebook 05 (active learning on real galaxies with Zooniverse files) with the ci parameters,
via the runner; and the zoolib pieces it calls."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from jobs import metrics, outputs_root, written

from zoolib import paths, prepare
from zoolib.active import heads_regime, runs, savings
from zoolib.cnn import pretrained
from zoolib.reports import runner

SDSS = paths.RAW_DIR / "sdss_gz1_sample" / "catalog.csv"


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    before = written(paths.PROJECT_ROOT)
    with outputs_root(root):
        done = runner.run("ci", only=["05"], reports_dir=root / "reports")
    assert written(paths.PROJECT_ROOT) == before  # nothing new or changed inside the checkout
    return root, done


def test_the_campaign_notebook_writes_its_files_and_statistics(ci_run):
    root, done = ci_run
    assert [p.name for p in done] == ["05_campaign.html"]
    m = metrics(root, "05_campaign")
    assert set(m["curve_gap"]) == {"random_null", "bald", "power_bald"}
    assert m["answer"].startswith("Too few paired seeds")  # 2 seeds: no claim either way
    assert m["report"]["kept"] == [50] and m["left_out"] == 10  # the 10 mergers: no vote
    folder = root / "data" / "campaigns" / "notebook05-pretrained"
    sent = pd.read_csv(folder / "round-001.csv", dtype={"#id_str": str})
    assert len(sent) == 4 and sent.columns[0] == "image"
    assert sent["#strategy"].eq("power_bald").all()
    export = pd.read_csv(folder / "classifications-001.csv")
    assert len(export) == 4  # one consensus vote per galaxy, answered by a replayed volunteer
    assert "SMOKE TEST" in (root / "reports" / "index.html").read_text()


def test_the_pool_leaves_out_what_the_trunk_saw_and_splits_by_source_and_class():
    catalog, pixels, report, left_out = prepare.real_pool([[SDSS, 0.4]], seed=3)
    assert len(catalog) == len(pixels) == 50 and report["no vote"].tolist() == [10]
    assert {r["reason"] for r in left_out} == {"no vote on smooth-or-featured"}
    assert all(Path(f).is_file() for f in catalog.image_file)
    smooth = catalog["smooth-or-featured_smooth"] == 1
    for part in (catalog[smooth], catalog[~smooth]):  # 70 / 10 / 20 within each class
        shares = part.split.value_counts(normalize=True)
        assert abs(shares["train"] - 0.7) < 0.08 and abs(shares["test"] - 0.2) < 0.08
    seen = set(catalog.id_str[:5])
    fewer, _, report, left_out = prepare.real_pool([[SDSS, 0.4]], leave_out=seen, seed=3)
    assert len(fewer) == 45 and report["seen by the trunk"].tolist() == [5]
    assert {r["id_str"] for r in left_out if r["reason"].startswith("seen")} == seen
    with pytest.raises(ValueError, match="ids in more than one source"):
        prepare.real_pool([[SDSS, 0.4], [SDSS, 0.5]])


def test_the_real_trunk_refuses_galaxies_it_trained_on_by_name():
    trained = sorted(pretrained.trained_ids("real"))
    assert len(trained) == 7709  # its manifest's trained_on, summed
    pretrained.check_unseen("pretrained", trained[:3])  # simulated only: nothing to refuse
    with pytest.raises(ValueError, match=f"2 galaxies of the pool .*{trained[0]}"):
        pretrained.check_unseen("real", [trained[0], trained[1], "never-seen"])


def test_final_predictions_are_the_heads_the_loop_measured(tmp_path):
    """The balanced accuracy is computed from each run's last head, rebuilt from its run file:
    its RMSE on the test split equals the loop's last curve point exactly."""
    rng = np.random.default_rng(0)
    g = 300
    features = rng.normal(size=(g, 8)).astype(np.float32)
    p = 1 / (1 + np.exp(-4 * features[:, 0]))
    k = (rng.random(g) < p).astype(int)
    catalog = pd.DataFrame({
        "id_str": [f"g{i}" for i in range(g)], "split": rng.choice(["train", "val", "test"], g,
                                                                   p=[0.6, 0.2, 0.2]),
        "smooth-or-featured_smooth": k, "smooth-or-featured_featured-or-disk": 1 - k,
        "smooth-or-featured_artifact": 0, "smooth-or-featured_total-votes": 1,
    })  # fmt: skip
    settings = runs.Settings(question="smooth-or-featured", metric="rmse", tree_votes=False,
                             strategies=("random", "bald"), n_initial=40, acquire_per_round=8,
                             n_rounds=2, n_seeds=2, random_streams=1, n_samples=8,
                             expected_votes={"smooth-or-featured": 1}, gate_margin=0.0)  # fmt: skip
    question = ["smooth-or-featured"]
    curves, _ = heads_regime.run(settings, features, catalog, question, tmp_path, progress=False)
    final = heads_regime.final_test_predictions(settings, features, catalog, question, tmp_path)
    truth = catalog.set_index("id_str")["smooth-or-featured_smooth"]
    last = curves[curves["round"] == 2].set_index(["strategy", "seed"])["smooth-or-featured rmse"]
    assert len(last) == 4
    for key, part in final.groupby(["strategy", "seed"]):
        rmse = np.sqrt(np.mean((part["rho smooth-or-featured"] - truth[part.id_str].to_numpy())**2))
        assert rmse == pytest.approx(last[key], rel=1e-9)


def _gap(mean, low, high, n=20):
    return {"mean": mean, "ci_low": low, "ci_high": high, "n_seeds": n}


def test_the_answer_says_yes_no_or_too_few_seeds():
    gaps = {"random_null": _gap(0, -1, 1), "bald": _gap(-0.004, -0.005, -0.003),
            "power_bald": _gap(-0.002, -0.003, -0.001), "entropy": _gap(0.01, 0.005, 0.02)}
    text = savings.answer(gaps, "rmse")
    assert text.startswith("Yes: bald, power_bald beat random") and "the best, bald" in text
    assert "entropy did worse" in text
    gaps["bald"] = gaps["power_bald"] = _gap(0.0, -0.001, 0.001)
    assert savings.answer(gaps, "rmse").startswith("No: no rule tried beats random on rmse")
    few = {s: {**g, "n_seeds": 2} for s, g in gaps.items()}
    assert savings.answer(few, "rmse").startswith("Too few paired seeds")
