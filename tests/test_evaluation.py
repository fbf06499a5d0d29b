"""The headline metric that counts what volunteers are asked, against a loop written by hand."""

import math

import numpy as np
import pandas as pd

from zoolib.cnn import evaluation
from zoolib.votes import schema
from zoolib.votes.schema import question

QS = ["smooth-or-featured", "disk-edge-on", "bar"]


def catalogue(galaxies=50, seed=0, truth=True):
    rng = np.random.default_rng(seed)
    cols = {"id_str": [f"g{i}" for i in range(galaxies)]}
    n_root = rng.integers(20, 50, galaxies)
    n = {"smooth-or-featured": n_root}
    n["disk-edge-on"] = rng.integers(0, n_root + 1)
    n["bar"] = rng.integers(0, n["disk-edge-on"] + 1)
    for q in QS:
        cols[question(q).yes_column] = rng.integers(0, n[q] + 1)
        cols[question(q).total_column] = n[q]
        if truth:
            cols[f"true_p_{q}"] = rng.uniform(0, 1, galaxies)
    return pd.DataFrame(cols)


def by_hand(rho, cat, truth=True):
    """Per question and pooled weighted RMSE, one galaxy at a time."""
    num, den = dict.fromkeys(QS, 0.0), dict.fromkeys(QS, 0.0)
    for i, row in cat.iterrows():
        for j, q in enumerate(QS):
            if truth:
                p = {name: row[f"true_p_{name}"] for name in QS}
                w = {"smooth-or-featured": 1.0, "disk-edge-on": 1 - p["smooth-or-featured"]}
                w["bar"] = w["disk-edge-on"] * (1 - p["disk-edge-on"])
                ref = p[q]
                weight = w[q]
            else:
                n_q = row[question(q).total_column]
                weight = n_q / row[question(QS[0]).total_column]
                ref = row[question(q).yes_column] / n_q if n_q else 0.0
            num[q] += weight * (rho[i, j] - ref) ** 2
            den[q] += weight
    per = {q: math.sqrt(num[q] / den[q]) for q in QS}
    return per, math.sqrt(sum(num.values()) / sum(den.values()))


def test_rmse_asked_weights_each_question_by_the_share_asked():
    for truth in (True, False):  # a simulation (true p), a real catalogue (observed N)
        cat = catalogue(truth=truth)
        rho = np.random.default_rng(1).uniform(0.01, 0.99, (len(cat), 3, 5))
        got = evaluation.question_metrics(rho, cat, QS)["cnn"]
        per, pooled = by_hand(rho.mean(axis=-1), cat, truth)
        for q in QS:
            np.testing.assert_allclose(got[q]["rmse_asked"], per[q], rtol=1e-12)
        np.testing.assert_allclose(got["all"]["rmse_asked"], pooled, rtol=1e-12)
        assert got["all"]["rmse_asked"] != np.mean([per[q] for q in QS])  # pooled, not averaged


def test_share_asked_follows_the_tree():
    p = {"smooth-or-featured": np.array([0.2, 1.0]), "disk-edge-on": np.array([0.5, 0.3])}
    np.testing.assert_allclose(schema.share_asked("bar", p.get), [0.8 * 0.5, 0.0])
    assert schema.share_asked("smooth-or-featured", p.get) == 1.0
    assert schema.ancestors("bar") == [("disk-edge-on", "no"),
                                       ("smooth-or-featured", "featured-or-disk")]  # fmt: skip


def test_learned_says_plainly_when_the_model_does_not_beat_the_constant():
    index = pd.MultiIndex.from_tuples(
        [("cnn", "bar"), ("cnn", "ring"), ("baseline", "bar"), ("baseline", "ring")],
        names=["model", "question"])  # fmt: skip
    table = pd.DataFrame({"nll": [0.30, 0.730, 0.60, 0.696]}, index=index)
    bar, ring = evaluation.learned(table)
    assert bar == ("bar: test NLL 0.3000 against the constant's 0.6000 (-50%): the images "
                   "taught it this much")
    assert "ring: test NLL 0.7300 is NOT below the constant's 0.6960 (+5%)" in ring
    assert "nothing here was learned" in ring
