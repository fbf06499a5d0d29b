"""Choosing the next galaxies on a real catalogue: zoolib.active.campaign's scores against
independent computations, and `python -m zoolib acquire` end to end on the shipped SDSS cutouts
and the shipped real model (its campaign folder, resume, and the votes coming back)."""

import json

import numpy as np
import pandas as pd
import pytest

from zoolib import __main__ as cli
from zoolib import paths
from zoolib.active import acquisition, campaign
from zoolib.votes import multinomial, trees

RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(50, 6)).astype(np.float32)


def test_a_two_answer_softmax_head_scores_as_the_binomial_head_it_equals():
    """Vote-vector BALD over (yes, no) with the no-logit at zero is the binomial BALD of
    sigmoid(z): the tree path and notebook 04's path agree on the same dropout masks."""
    w, b = RNG.normal(size=(6, 1)), RNG.normal(size=1)
    binomial = campaign.Head(w, b, 0.5, questions=("bar",))
    tree = trees.Tree("t", (trees.Node("bar", ("yes", "no")),))
    softmax = campaign.Head(np.concatenate([w, 0 * w], 1), np.concatenate([b, 0 * b]), 0.5,
                            tree=tree)  # fmt: skip
    for rule in ("bald", "power_bald"):
        p1, s1 = campaign.choose(rule, binomial, FEATURES, 10, seed=3, expected_votes=12)
        p2, s2 = campaign.choose(rule, softmax, FEATURES, 10, seed=3, expected_votes=12)
        np.testing.assert_allclose(s1, s2, rtol=1e-6)  # the binomial recurrence: ~1e-8
        np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(campaign.choose("bald", binomial, FEATURES, 10, 3, 12)[0],
                                  np.argsort(-s1, kind="stable")[:10])  # fmt: skip


def test_a_later_question_counts_by_the_volunteers_expected_to_reach_it():
    """Brute force: each question's vote-vector BALD at N x its share of volunteers asked,
    from the head's own mean answer probabilities, summed."""
    tree = trees.Tree("t", (trees.Node("shape", ("round", "disk", "odd")),
                            trees.Node("bar", ("yes", "no"), (("shape", "disk"),))))  # fmt: skip
    head = campaign.Head(RNG.normal(size=(6, 5)), RNG.normal(size=5), 0.3, tree=tree)
    rng = np.random.default_rng(9)
    got = campaign.tree_scores(head, FEATURES, 20, 16, rng)
    logits = campaign.heads.sample_logits(FEATURES, head.weights, head.bias, 16, 0.3,
                                          np.random.default_rng(9))  # fmt: skip
    p = multinomial.answer_probabilities(logits, [3, 2])
    shape, bar = np.moveaxis(p[:, :3], 1, 2), np.moveaxis(p[:, 3:], 1, 2)
    by_hand = []
    for g in range(len(FEATURES)):
        n_bar = int(np.rint(20 * shape[g, :, 1].mean()))  # share asked: P(disk)
        by_hand.append(multinomial.mutual_information(shape[g : g + 1], 20)[0]
                       + multinomial.mutual_information(bar[g : g + 1], n_bar)[0])  # fmt: skip
    np.testing.assert_allclose(got, by_hand, rtol=1e-10)
    assert np.ptp(np.rint(20 * shape[:, :, 1].mean(-1))) > 0  # the shares do differ


def test_binomial_heads_follow_the_decision_tree_and_refuse_what_they_cannot_score():
    """The shipped questions: disk-edge-on and bar at N (1 - rho_smooth) and so on (as
    notebook 04 with tree_votes); a label outside the tree at the flat N."""
    head = campaign.Head(RNG.normal(size=(6, 3)), RNG.normal(size=3), 0.5,
                         questions=("smooth-or-featured", "disk-edge-on", "bar"))  # fmt: skip
    rng = np.random.default_rng(1)
    got = campaign.binomial_scores("bald", head, FEATURES, 40, 20, rng)
    rho = campaign.heads.sample_rho(FEATURES, head.weights, head.bias, 20, 0.5,
                                    np.random.default_rng(1))  # fmt: skip
    mean = rho.mean(-1)
    asked = 40 * np.stack([np.ones(len(mean)), 1 - mean[:, 0],
                           (1 - mean[:, 0]) * (1 - mean[:, 1])], 1)  # fmt: skip
    n = np.rint(asked)  # rounded once, at the end
    expected = acquisition.mutual_information(rho, n).sum(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    ring = campaign.Head(RNG.normal(size=(6, 1)), RNG.normal(size=1), 0.5, questions=("ring",))
    flat = campaign.binomial_scores("bald", ring, FEATURES, 7, 20, np.random.default_rng(2))
    rho = campaign.heads.sample_rho(FEATURES, ring.weights, ring.bias, 20, 0.5,
                                    np.random.default_rng(2))  # fmt: skip
    np.testing.assert_allclose(flat, acquisition.mutual_information(rho, 7.0)[:, 0])
    tree = campaign.Head(RNG.normal(size=(6, 2)), np.zeros(2), 0.5,
                         tree=trees.Tree("t", (trees.Node("q", ("a", "b")),)))  # fmt: skip
    with pytest.raises(ValueError, match="for a tree .*model choose from"):
        campaign.choose("epig", tree, FEATURES, 5, 0)
    with pytest.raises(ValueError, match="--n 60: choose between 1 and the 50"):
        campaign.choose("bald", head, FEATURES, 60, 0)


SDSS = paths.PROJECT_ROOT / "data" / "raw" / "sdss_gz1_sample" / "catalog.csv"


def _acquire(*extra):
    return cli.main(["acquire", "--model", "real", "--catalog", str(SDSS), "--n", "6",
                     "--no-progress", *extra])  # fmt: skip


def test_acquire_writes_a_manifest_and_campaign_resumes_and_votes_come_back(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert _acquire("--out", "r1.csv", "--seed", "4") == 0
    manifest = pd.read_csv("r1.csv", dtype={"#id_str": str})
    assert manifest.columns.tolist() == ["image", "#id_str", "#score", "#rank", "#strategy",
                                         "#round"]  # fmt: skip
    assert manifest["#rank"].tolist() == [1, 2, 3, 4, 5, 6] and len(set(manifest["#id_str"])) == 6
    assert all(pd.Series(manifest.image).map(lambda f: (tmp_path / f).is_file()))
    record = json.loads((tmp_path / "campaign" / "round-001" / "round.json").read_text())
    assert record["picks"] == manifest["#id_str"].tolist() and record["strategy"] == "power_bald"
    assert len(record["model_sha256"]) == 64 and record["scored"] == 60

    # the same seed, another campaign: the same picks, computed again
    assert _acquire("--out", "again.csv", "--seed", "4", "--campaign", "c2") == 0
    assert pd.read_csv("again.csv", dtype={"#id_str": str})["#id_str"].tolist() == record["picks"]
    # an interrupted round (no round.json, no scores) finishes in its own folder, the same
    (tmp_path / "c2" / "round-001" / "round.json").unlink()
    (tmp_path / "c2" / "round-001" / "scores.csv").unlink()
    assert _acquire("--out", "again.csv", "--seed", "4", "--campaign", "c2") == 0
    assert sorted(p.name for p in (tmp_path / "c2").iterdir()) == ["round-001"]
    assert pd.read_csv("again.csv", dtype={"#id_str": str})["#id_str"].tolist() == record["picks"]
    # a finished round is not recomputed
    capsys.readouterr()
    assert _acquire("--out", "r1.csv", "--seed", "4") == 0
    assert "already chose these galaxies" in capsys.readouterr().out

    # volunteers answer; votes reads the export back; round 2 leaves the labelled out
    rows = [{"classification_id": str(i), "user_name": "v", "workflow_id": "1",
             "workflow_version": "1.1", "created_at": "", "metadata": "{}",
             "annotations": json.dumps([{"task": "T0", "value": i % 2}]),
             "subject_data": json.dumps({str(100 + i): {"#id_str": id_str}}),
             "subject_ids": str(100 + i)} for i, id_str in enumerate(record["picks"])]  # fmt: skip
    pd.DataFrame(rows).to_csv("export.csv", index=False)
    (tmp_path / "tasks.yaml").write_text("T0: {question: ring, answers: ['yes', 'no']}\n")
    assert cli.main(["votes", "--export", "export.csv", "--tasks", "tasks.yaml",
                     "--out", "votes.csv"]) == 0  # fmt: skip
    votes = pd.read_csv("votes.csv", dtype={"id_str": str})
    assert votes["id_str"].tolist() == record["picks"]
    assert votes["ring_yes"].tolist() == [1, 0, 1, 0, 1, 0]
    # round 2 into the same folder's campaign; its manifest may not replace round 1's
    assert _acquire("--out", "r1.csv", "--labelled", "votes.csv", "--strategy", "bald") != 0
    assert "holds round 1's manifest; this is round 2" in capsys.readouterr().err
    assert _acquire("--out", "r2.csv", "--labelled", "votes.csv", "--strategy", "bald") == 0
    second = json.loads((tmp_path / "campaign" / "round-002" / "round.json").read_text())
    assert second["scored"] == 54 and not set(second["picks"]) & set(record["picks"])
    assert pd.read_csv("r2.csv")["#round"].eq(2).all()
    scores = pd.read_csv(tmp_path / "campaign" / "round-002" / "scores.csv")
    top = scores.sort_values("score", ascending=False, kind="stable").head(6)
    assert top["rank"].notna().all()  # bald: the six highest scores
    # the manifest itself lists what volunteers have: the same round 2 again
    assert _acquire("--out", "r2.csv", "--labelled", "r1.csv", "--strategy", "bald") == 0
    assert "already chose" in capsys.readouterr().out


def test_acquire_refuses_bad_input_before_writing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _acquire("--out", "m.txt") != 0
    assert "a subject manifest is a .csv file" in capsys.readouterr().err
    pd.DataFrame({"name": ["1"]}).to_csv("done.csv", index=False)
    assert _acquire("--out", "m.csv", "--labelled", "done.csv") != 0
    assert "no id column; name the column of the catalogue's ids one of" in capsys.readouterr().err
    assert cli.main(["acquire", "--model", "real", "--catalog", str(SDSS), "--n", "61",
                     "--out", "m.csv"]) != 0  # fmt: skip
    assert "--n 61: choose between 1 and the 60" in capsys.readouterr().err
    assert not list(tmp_path.glob("m.*")) and not (tmp_path / "campaign").exists()
    # a wrong images root: every image skipped, said so, and the attempt leaves no round
    assert _acquire("--out", "m.csv", "--images-root", str(tmp_path), "--on-error", "skip") != 0
    assert "every one of the 60 images was skipped" in capsys.readouterr().err
    assert not list((tmp_path / "campaign").glob("round-*")) and not (tmp_path / "m.csv").exists()
