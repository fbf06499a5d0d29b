"""Notebook 04's loop with a softmax head over every answer of a tree (issue 34, item 4): the
heads learn, the scores are vote-vector BALD at each question's expected volunteers, runs
resume, and what a tree's heads cannot run is refused by name."""

import numpy as np
import pandas as pd
import pytest

from zoolib.active import campaign, heads_regime, runs
from zoolib.votes import multinomial, trees

TREE = trees.tree("three")  # smooth-or-featured (3 answers), disk-edge-on, bar


def _catalog(rng, g=400, f=6):
    """Votes drawn down the tree from answer probabilities that depend on the features."""
    x = rng.normal(size=(g, f)).astype(np.float32)
    w = rng.normal(size=(f, TREE.n_answers)) * 1.5
    p = multinomial.answer_probabilities(x @ w, TREE.sizes(), axis=-1)
    parts = dict(zip(TREE.questions, np.split(p, np.cumsum(TREE.sizes())[:-1], axis=1),
                     strict=True))  # fmt: skip
    cols = {"id_str": [f"g{i}" for i in range(g)],
            "split": rng.choice(["train", "val", "test"], g, p=[0.6, 0.15, 0.25])}  # fmt: skip
    totals = {"smooth-or-featured": np.full(g, 20)}
    for node in TREE.nodes:
        n = totals[node.name]
        votes = np.stack([rng.multinomial(t, q) for t, q in zip(n, parts[node.name], strict=True)])
        for j, answer in enumerate(node.answers):
            cols[f"{node.name}_{answer}"] = votes[:, j]
        cols[node.total_column] = n
        if node.name == "smooth-or-featured":
            totals["disk-edge-on"] = votes[:, 1]
        if node.name == "disk-edge-on":
            totals["bar"] = votes[:, 1]
    return x, pd.DataFrame(cols)


SETTINGS = dict(metric="rmse", strategies=("random", "random_null", "bald", "power_bald"),
                n_initial=40, acquire_per_round=16, n_rounds=3, n_seeds=2, random_streams=1,
                n_samples=8, gate_margin=0.0)  # fmt: skip


def test_a_tree_loop_learns_every_answer_scores_vote_vectors_and_resumes(tmp_path):
    x, catalog = _catalog(np.random.default_rng(0))
    settings = runs.Settings(**SETTINGS)
    args = (settings, x, catalog, [], tmp_path)
    partial, _ = heads_regime.run(*args, progress=False, stop_after=5, tree=TREE)
    curves, picks = heads_regime.run(*args, progress=False, tree=TREE)
    again, _ = heads_regime.run(*args, progress=False, tree=TREE)
    pd.testing.assert_frame_equal(curves, again)  # resumed runs give identical results
    assert {f"{c} rmse" for c in TREE.answer_columns()} | {"all rmse"} <= set(curves.columns)
    first, last = (curves[curves["round"] == r]["all rmse"].mean() for r in (0, 3))
    assert last < first  # the softmax heads learn from more labels
    bald = picks[(picks.strategy == "bald") & (picks["round"] == 1) & (picks.seed == 0)]
    assert bald.score.is_monotonic_decreasing and (bald.score > 0).all()  # top-k by BALD

    # the scores are campaign.vote_vector_bald of the head refit from the run file
    data = heads_regime.Data.build(x, catalog, [], tree=TREE)
    learner = heads_regime.HeadLearner(data, settings)
    rounds = runs.read_run(runs.run_file(tmp_path, "bald", 0), learner.header())
    labelled, model = heads_regime.round_model(learner, rounds, "bald", 0, 1)
    pool = np.setdiff1d(data.pool, labelled)
    p = learner.rho(model, pool, "dropout", runs.stream(0, 1, "score"))
    n = float(np.rint(catalog.iloc[labelled]["smooth-or-featured_total-votes"].mean()))
    score = campaign.vote_vector_bald(p, TREE, n)
    top = catalog.id_str.to_numpy()[pool[np.argsort(-score, kind="stable")[:16]]]
    assert list(bald.id_str) == list(top)
    assert p.shape == (len(pool), TREE.n_answers, 8)
    np.testing.assert_allclose(p[:, :3].sum(1), 1.0)  # a softmax over each question's answers


@pytest.mark.parametrize("change, message", [
    ({"strategies": ("random", "epig")}, r"remove \['epig'\]"),
    ({"question": "bar"}, "score every question; use 'all'"),
    ({"metric": "rmse_asked"}, "measured by 'rmse'"),
])  # fmt: skip
def test_what_a_trees_heads_cannot_run_is_refused_by_name(tmp_path, change, message):
    x, catalog = _catalog(np.random.default_rng(1), g=200)
    settings = runs.Settings(**{**SETTINGS, **change})
    with pytest.raises(ValueError, match=message):
        heads_regime.run(settings, x, catalog, [], tmp_path, progress=False, tree=TREE)
    assert not list(tmp_path.glob("*.json"))  # refused before any run file
