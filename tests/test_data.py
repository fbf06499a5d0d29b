import json

import numpy as np
import pandas as pd
import pytest

from zoolib.data import processed
from zoolib.universe import synthetic


@pytest.fixture(scope="module")
def small():
    return synthetic.simulate(120, size=32, seed=2)


def test_write_and_load_round_trip(tmp_path, small):
    images, cat = small
    folder = processed.write_processed("demo", images, cat, "synthetic", seed=5, root=tmp_path)
    ds = processed.load_processed("demo", root=tmp_path, verify=True)
    assert isinstance(ds.images, np.memmap)
    np.testing.assert_array_equal(ds.images, images)
    pd.testing.assert_frame_equal(ds.catalog.drop(columns="split"), cat.reset_index(drop=True))
    assert ds.manifest["split_counts"] == {"train": 84, "val": 12, "test": 24}
    assert ds.questions == ["smooth-or-featured", "disk-edge-on", "bar"]
    assert ds.manifest["image_size"] == 32 and ds.manifest["n_galaxies"] == 120
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temporary leftovers
    x, rows = ds.split("test")
    assert len(x) == len(rows) == 24 and (rows["split"] == "test").all()
    votes = processed.votes_array(rows, ds.questions)
    assert votes.shape == (24, 3, 2)
    np.testing.assert_array_equal(votes[:, 2, 1], rows["bar_total-votes"])
    # a tampered file is caught by verify
    (folder / "catalog.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="does not match the hash"):
        processed.load_processed("demo", root=tmp_path, verify=True)


def test_splits_are_seeded_and_sized():
    a = processed.assign_splits(1000, (0.7, 0.1, 0.2), seed=1)
    assert (a == "train").sum() == 700 and (a == "val").sum() == 100
    np.testing.assert_array_equal(a, processed.assign_splits(1000, (0.7, 0.1, 0.2), seed=1))
    assert not np.array_equal(a, processed.assign_splits(1000, (0.7, 0.1, 0.2), seed=2))
    with pytest.raises(ValueError, match="split_fractions"):
        processed.assign_splits(10, (0.7, 0.2, 0.2), seed=0)


@pytest.mark.parametrize(
    "break_it, message",
    [
        (
            lambda c: c.assign(id_str=["dup"] * 2 + list(c.id_str[2:])),
            r"duplicate id_str values: \['dup'\]",
        ),
        (
            lambda c: c.assign(**{"bar_yes": c["bar_total-votes"] + 1}),
            r"question 'bar': .*index 0 \('synth-2-0000000'\)",
        ),
        (lambda c: c.assign(**{"smooth-or-featured_smooth": -1}), "negative at index 0"),
        (lambda c: c.assign(**{"disk-edge-on_total-votes": np.nan}), "not finite"),
        (lambda c: c.drop(columns="id_str"), "required column 'id_str' is missing"),
        (lambda c: c.iloc[:0], "the catalogue is empty"),
        (lambda c: c.iloc[:-1], "119 catalogue rows but 120 images"),
    ],
)
def test_bad_catalogue_is_refused_and_nothing_is_written(tmp_path, small, break_it, message):
    images, cat = small
    processed.write_processed("keep", images, cat, "synthetic", root=tmp_path)
    with pytest.raises(ValueError, match=message):
        processed.write_processed("keep", images, break_it(cat.copy()), "synthetic", root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
    kept = processed.load_processed("keep", root=tmp_path, verify=True)
    assert kept.manifest["n_galaxies"] == 120


def test_failure_while_writing_leaves_old_dataset_intact(tmp_path, small, monkeypatch):
    images, cat = small
    processed.write_processed("keep", images, cat, "first", root=tmp_path)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        processed.write_processed("keep", images, cat, "second", root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
    manifest = json.loads((tmp_path / "keep" / "manifest.json").read_text())
    assert manifest["source"] == "first"


def test_missing_dataset_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="01_data_prep"):
        processed.load_processed("nothing", root=tmp_path)


def test_failed_swap_puts_the_old_dataset_back(tmp_path, small, monkeypatch):
    from pathlib import Path

    images, cat = small
    processed.write_processed("keep", images, cat, "first", root=tmp_path)
    real_rename = Path.rename

    def rename(self, target):
        if self.name.startswith(".keep.tmp-"):
            raise OSError("rename failed")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        processed.write_processed("keep", images, cat, "second", root=tmp_path)
    monkeypatch.undo()
    kept = processed.load_processed("keep", root=tmp_path, verify=True)
    assert kept.manifest["source"] == "first"


def test_an_older_dataset_without_a_recorded_tree_reads_its_questions(tmp_path):
    from zoolib.votes import trees

    catalog = pd.DataFrame({"id_str": ["a", "b"], "smooth-or-featured_smooth": [1, 0],
                            "smooth-or-featured_featured-or-disk": [0, 1],
                            "smooth-or-featured_artifact": [0, 0],
                            "smooth-or-featured_total-votes": [1, 1], "bar_yes": [0, 1],
                            "bar_no": [1, 0], "bar_total-votes": [1, 1]})  # fmt: skip
    ds = processed.ProcessedDataset(np.zeros((2, 4, 4, 1), np.uint8), catalog,
                                    {"questions": ["smooth-or-featured", "bar"]},
                                    tmp_path)  # fmt: skip
    assert ds.tree.questions == ["smooth-or-featured", "bar"]  # bar's parent is not there
    assert ds.tree.node("bar").asked_if == () and trees.THREE.node("bar").asked_if != ()
