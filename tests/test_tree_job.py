"""The main job's notebooks 01 -> 04 with a tree model: a softmax over every answer (04: heads
with a softmax over each question's answers, scored by vote-vector BALD).

A module of its own (not a fixture of test_main_job) so that ``pytest -n 2`` runs it beside
the main job rather than after it."""

import json

import pytest
import yaml
from jobs import metrics, outputs_root

from zoolib.reports import runner

pytestmark = pytest.mark.slow  # runs four notebooks (about 90 s on 2 cores)


@pytest.fixture(scope="module")
def tree_run(tmp_path_factory):
    """Notebooks 01 -> 04 with the ci parameters, 02 and 03 on a multinomial tree model, 04
    with softmax heads."""
    root = tmp_path_factory.mktemp("tree")
    sets = runner.load_params("ci")
    # one epoch: the start (the pretrained CNN's own answers) is kept unless beaten
    sets["02_train"].update(likelihood="multinomial", model_name="ci_tree", epochs=1)
    sets["03_dropout_posteriors"].update(model_name="ci_tree", n_samples=4)
    sets["04_active_learning"].update(likelihood="multinomial", metric="rmse",
                                      strategies=["random", "random_null", "bald", "power_bald"])
    params = root / "tree.yaml"
    params.write_text(yaml.safe_dump({k: sets[k] for k in ("01_data_prep", "02_train",
                                                           "03_dropout_posteriors",
                                                           "04_active_learning")}))  # fmt: skip
    with outputs_root(root):
        runner.run(str(params), only=["01", "02", "03", "04"], reports_dir=root / "reports")
    return root


def test_a_tree_model_trains_and_explains_every_answer(tree_run):
    train = metrics(tree_run, "02_train")
    answers = ["smooth-or-featured_smooth", "smooth-or-featured_featured-or-disk",
               "smooth-or-featured_artifact", "disk-edge-on_yes", "disk-edge-on_no", "bar_yes",
               "bar_no"]  # fmt: skip
    assert train["likelihood"] == "multinomial" and list(train["tree"]) == train["questions"]
    assert list(train["test"]["cnn"]) == answers
    for name in answers:  # every answer scored against its truth, and the first beats the constant
        assert 0 <= train["test"]["cnn"][name]["rmse_true"] <= 1
    smooth = "smooth-or-featured_smooth"
    assert train["test"]["cnn"][smooth]["nll"] < train["test"]["baseline"][smooth]["nll"]
    posterior = metrics(tree_run, "03_dropout_posteriors")
    assert list(posterior["questions"]) == answers
    for row in posterior["questions"].values():
        values = [row["randomized_mc"][lv] for lv in ("0.5", "0.8", "0.95")]
        assert values == sorted(values) and all(0 <= v <= 1 for v in values)
    card = json.loads((tree_run / "models" / "ci_tree.card.json").read_text())
    assert card["likelihood"] == "multinomial" and card["tree"]["bar"]["answers"] == ["yes", "no"]


def test_active_learning_runs_softmax_heads_over_every_answer(tree_run):
    m = metrics(tree_run, "04_active_learning")
    assert m["column"] == "all rmse" and set(m["curve_gap"]) == {"random_null", "bald",
                                                                  "power_bald"}  # fmt: skip
    assert "bar_no rmse" in m["curves"] and "smooth-or-featured_artifact rmse" in m["curves"]
    assert all(0 <= v <= 1 for v in m["curves"]["all rmse"])
