"""Zooniverse formats (zoolib.data.panoptes) and `python -m zoolib votes`, on an export made here
and counted by hand."""

import json

import pandas as pd
import pytest

from zoolib import __main__ as cli
from zoolib.data import panoptes

TASKS = {
    "T0": {"question": "smooth-or-featured", "answers": ["smooth", "featured-or-disk", "artifact"]},
    "T1": {"question": "disk-edge-on", "answers": ["yes", "no"],
           "labels": ["Yes, edge on", "No, something else"]},
}  # fmt: skip


def _row(cid, subject, id_str, annotations, workflow="101", version="12.10"):
    return {
        "classification_id": str(cid), "user_name": f"volunteer{cid}", "workflow_id": workflow,
        "workflow_version": version, "created_at": "2026-12-05 10:00:00 UTC", "metadata": "{}",
        "annotations": annotations if isinstance(annotations, str) else json.dumps(annotations),
        "subject_data": json.dumps({str(subject): {"retired": None, "#id_str": id_str}}),
        "subject_ids": str(subject),
    }  # fmt: skip


def _export(bad: list | None = None) -> pd.DataFrame:
    """Galaxy A (subject 1): smooth, featured + edge-on (index), featured + "No, something else"
    (label), artifact; galaxy B (subject 2 and, uploaded again, 3): featured + yes, smooth,
    and T0 skipped (null). Plus: A's first row again (a duplicate), a row of workflow 202 and
    one of version 11.3, and a task T9 the tasks file does not name."""
    rows = [
        _row(1, 1, "A", [{"task": "T0", "value": 0}]),
        _row(2, 1, "A", [{"task": "T0", "value": 1}, {"task": "T1", "value": 0}]),
        _row(3, 1, "A", [{"task": "T0", "value": "Featured or Disk"},
                         {"task": "T1", "value": "No, something else"}]),
        _row(4, 1, "A", [{"task": "T0", "value": 2}, {"task": "T9", "value": 0}]),
        _row(5, 2, "B", [{"task": "T0", "value": 1}, {"task": "T1", "value": "yes"}]),
        _row(6, 3, "B", [{"task": "T0", "value": "smooth"}]),
        _row(7, 3, "B", [{"task": "T0", "value": None}]),
        _row(1, 1, "A", [{"task": "T0", "value": 0}]),  # exported twice
        _row(8, 1, "A", [{"task": "T0", "value": 0}], workflow="202"),
        _row(9, 1, "A", [{"task": "T0", "value": 0}], version="11.3"),
    ]  # fmt: skip
    return pd.DataFrame(rows + (bad or []))


HAND = pd.DataFrame({
    "id_str": ["A", "B"],
    "smooth-or-featured_smooth": [1, 1], "smooth-or-featured_featured-or-disk": [2, 1],
    "smooth-or-featured_artifact": [1, 0], "smooth-or-featured_total-votes": [4, 2],
    "disk-edge-on_yes": [1, 1], "disk-edge-on_no": [1, 0], "disk-edge-on_total-votes": [2, 1],
})  # fmt: skip


def test_counts_match_a_hand_count_with_duplicates_other_workflows_and_skips_summarised():
    tasks = panoptes.tasks_from_mapping(TASKS)
    table, summary = panoptes.count_votes(_export(), tasks, workflow_id=101, workflow_version=12)
    pd.testing.assert_frame_equal(table, HAND)
    assert summary.duplicates == 1 and summary.counted == 7 and summary.rows == 10
    assert summary.other_workflows == {"202 version 12.10": 1, "101 version 11.3": 1}
    assert summary.unanswered == {"T0": 1} and summary.other_tasks == {"T9": 1}
    text = "\n".join(summary.lines())
    assert "1 repeated classification_id(s) counted once" in text
    assert "1 row(s) of workflow 202 version 12.10 left out" in text
    # an exact version keeps only itself: 12.1 is not 12.10, and counting nothing is refused
    with pytest.raises(ValueError, match=r"no classification counted for workflow 101 version "
                                         r"12.1; the export has workflow\(s\) 101 \(versions "
                                         r"11.3, 12.10\), 202 \(versions 12.10\)"):  # fmt: skip
        panoptes.count_votes(_export(), tasks, 101, "12.1")
    # no workflow named, two in the export: refused rather than mixed
    with pytest.raises(ValueError, match="several workflows.*pass --workflow-id"):
        panoptes.count_votes(_export(), tasks)
    # one workflow, every version: the 11.3 row counts too (+1 smooth for A)
    every, _ = panoptes.count_votes(_export(), tasks, workflow_id="101")
    assert every.loc[0, "smooth-or-featured_smooth"] == 2


def test_a_mistyped_task_name_is_refused_naming_the_exports_tasks():
    wrong = {("t1" if k == "T1" else k): v for k, v in TASKS.items()}
    with pytest.raises(ValueError, match=r"task\(s\) \['t1'\] of the tasks file are answered "
                                         r"by no counted classification; the export's tasks are "
                                         r"\['T0', 'T1', 'T9'\]"):  # fmt: skip
        panoptes.count_votes(_export(), panoptes.tasks_from_mapping(wrong), 101, 12)


@pytest.mark.parametrize(
    "bad, message",
    [
        (_row(20, 1, "A", [{"task": "T0", "value": 5}]), "answer index 5 is not one of its 3"),
        (_row(21, 1, "A", [{"task": "T1", "value": "Maybe"}]), "answer 'Maybe' is not one of"),
        (_row(22, 1, "A", '[{"task": "T0", "value": 0'), "unreadable JSON"),
        (_row(23, 1, "A", [{"task": "T0"}]), "has no task and value"),
        (_row(24, 1, "", [{"task": "T0", "value": 0}]), "has no #id_str"),
        (_row(25, 1, "A", [{"task": "T0", "value": [0, 1]}]), "a multiple-answer task"),
    ],
    ids=["index", "label", "json", "no-value", "no-id", "list"],
)
def test_a_bad_classification_is_refused_by_id_or_skipped_whole_and_listed(bad, message):
    tasks = panoptes.tasks_from_mapping(TASKS)
    fix = "the tasks file" if bad["classification_id"] in ("20", "21") else "the export row"
    with pytest.raises(ValueError, match=f"classification_id {bad['classification_id']} "
                                         f"\\(data row 10, line 12 of the file\\): .*{message}"
                                         f".*fix {fix}"):  # fmt: skip
        panoptes.count_votes(_export([bad]), tasks, 101, 12)
    table, summary = panoptes.count_votes(_export([bad]), tasks, 101, 12, on_error="skip")
    pd.testing.assert_frame_equal(table, HAND)  # none of its annotations counted
    assert [s[:2] for s in summary.skipped] == [(bad["classification_id"], 10)]
    assert message.split(" ")[0] in summary.skipped[0][2]


def test_tasks_files_are_checked_naming_the_task():
    with pytest.raises(ValueError, match="task T0: 'Smooth': names are lower case.*try 'smooth'"):
        panoptes.tasks_from_mapping({"T0": {"question": "q", "answers": ["Smooth", "b"]}})
    with pytest.raises(ValueError, match="task T1: question 'q' is task T0 too"):
        panoptes.tasks_from_mapping({"T0": {"question": "q", "answers": ["a", "b"]},
                                     "T1": {"question": "q", "answers": ["a", "b"]}})  # fmt: skip
    with pytest.raises(ValueError, match="task T0: 1 labels for 2 answers"):
        panoptes.tasks_from_mapping({"T0": {"question": "q", "answers": ["a", "b"],
                                            "labels": ["A"]}})  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown entries \['answer'\]"):
        panoptes.tasks_from_mapping({"T0": {"question": "q", "answers": ["a", "b"], "answer": 1}})
    # YAML's bare yes / no are booleans: read back as the names
    tasks = panoptes.tasks_from_mapping({"T0": {"question": "bar", "answers": [True, False]}})
    assert tasks["T0"].answers == ("yes", "no")


def test_the_votes_command_writes_the_table_and_nothing_on_a_bad_row(tmp_path, monkeypatch, capsys):
    import yaml

    monkeypatch.chdir(tmp_path)  # paths are relative to where the user stands
    _export().to_csv("export.csv", index=False)
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump(TASKS))
    argv = ["votes", "--export", "export.csv", "--tasks", "tasks.yaml", "--workflow-id", "101",
            "--workflow-version", "12", "--out", "votes.csv"]  # fmt: skip
    assert cli.main(argv) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "votes.csv"), HAND)
    assert f"2 galaxies -> {tmp_path / 'votes.csv'}" in capsys.readouterr().out

    _export([_row(30, 1, "A", [{"task": "T0", "value": 7}])]).to_csv("bad.csv", index=False)
    bad = [*argv[:2], "bad.csv", *argv[3:-1], "bad-votes.csv"]
    assert cli.main(bad) != 0
    assert "classification_id 30" in capsys.readouterr().err
    assert not (tmp_path / "bad-votes.csv").exists()
    assert cli.main([*bad, "--on-error", "skip"]) == 0
    listed = pd.read_csv(tmp_path / "bad-votes.skipped.csv")
    assert listed["classification_id"].tolist() == [30]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "bad-votes.csv"), HAND)


def test_a_manifest_puts_images_first_and_needs_the_hidden_id(tmp_path):
    subjects = pd.DataFrame({"#id_str": ["A"], "#score": [0.3], "image": ["a.jpg"]})
    out = panoptes.write_manifest(subjects, tmp_path / "m.csv", ["image"])
    assert pd.read_csv(out).columns.tolist() == ["image", "#id_str", "#score"]
    with pytest.raises(ValueError, match="no #id_str column"):
        panoptes.write_manifest(subjects.drop(columns="#id_str"), tmp_path / "n.csv", ["image"])


def test_a_replayed_export_counts_back_to_the_votes_it_was_made_from():
    tasks = panoptes.tasks_from_mapping(TASKS)
    manifest = pd.DataFrame({"image": ["b.jpg", "a.jpg"], "#id_str": ["B", "A"]})
    export = panoptes.replay_export(manifest, HAND, tasks)
    assert len(export) == HAND.filter(like="total-votes").to_numpy().sum() == 9
    table, summary = panoptes.count_votes(export, tasks)
    pd.testing.assert_frame_equal(table.set_index("id_str").loc[["A", "B"]].reset_index(), HAND)
    assert summary.counted == 9 and not summary.duplicates
    with pytest.raises(ValueError, match="no known votes for 1 manifest subject"):
        panoptes.replay_export(manifest.assign(**{"#id_str": ["B", "C"]}), HAND, tasks)
