"""zoolib.data.catalogs: the shipped real samples, every bad-input case, and on_error="skip"."""

import csv
import gzip
from pathlib import Path

import pandas as pd
import pytest

from zoolib.data import catalogs
from zoolib.data.catalogs import FORMATS, GZ1_CLASS_MAP, read_catalog
from zoolib.votes.schema import vote_columns

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
GZ2 = RAW / "gz2_stripe82" / "table5_counts.csv.gz"
DECALS = RAW / "gz_decals_dr5" / "catalog.csv"
GZ1 = RAW / "sdss_gz1_sample" / "catalog.csv"
SF = vote_columns(["smooth-or-featured"])  # smooth, featured-or-disk, artifact, total


def write_csv(path: Path, rows: list[list], header: list[str] | None = None) -> Path:
    """A small DECaLS-style catalogue: id_str and the four smooth-or-featured columns."""
    header = header or ["id_str", *SF]
    pd.DataFrame(rows, columns=header).to_csv(path, index=False)
    return path


# --- the shipped samples -------------------------------------------------------------------


def test_gz2_sample_matches_the_raw_csv():
    df, skipped = read_catalog(GZ2)
    assert skipped == [] and len(df) == 19761
    assert list(df.columns[:11]) == ["id_str", *vote_columns()]
    assert all(df[c].dtype == "int64" for c in vote_columns())
    assert df["id_str"].is_unique and df["id_str"].str.len().eq(19).all()
    with gzip.open(GZ2, "rt", newline="") as f:
        rows = {r["objid"]: r for r in csv.DictReader(f)}
    pairs = {
        "smooth-or-featured_smooth": "t01_smooth_or_features_a01_smooth_count",
        "disk-edge-on_no": "t02_edgeon_a05_no_count",
        "bar_yes": "t03_bar_a06_bar_count",
    }
    for _, galaxy in df.sample(200, random_state=1).iterrows():
        raw = rows[galaxy["id_str"]]  # ids exact: a float objid would not match
        for ours, theirs in pairs.items():
            assert galaxy[ours] == int(raw[theirs])
        assert galaxy["smooth-or-featured_total-votes"] == int(raw["total_classifications"])


def test_gz2_first_galaxy_by_hand():
    df, _ = read_catalog(GZ2, format="gz2")
    first = df.set_index("id_str").loc["8647474690312307154"]
    assert first[vote_columns()].tolist() == [10, 5, 1, 16, 1, 4, 5, 2, 2, 4]
    assert first["ra"] == pytest.approx(309.3204)


def test_gz2_decision_tree_violations_are_kept():
    """Real GZ2 counts break N_edge-on <= N_smooth-or-featured; the reader does not drop them."""
    df, _ = read_catalog(GZ2)
    row = df.set_index("id_str").loc["8647474690892694258"]
    assert row["disk-edge-on_total-votes"] == 17 > row["smooth-or-featured_total-votes"] == 16
    assert (df["bar_total-votes"] > df["disk-edge-on_total-votes"]).sum() == 53


def test_decals_sample():
    df, skipped = read_catalog(DECALS)
    assert skipped == [] and len(df) == 28
    assert list(df.columns[:6]) == ["id_str", "file_loc", *SF]
    assert "bar_yes" not in df  # only the first question is in this file
    with open(DECALS, newline="") as f:
        raw = list(csv.DictReader(f))
    assert df["id_str"].tolist() == [r["iauname"] for r in raw]
    assert df[SF].values.tolist() == [[int(r[c]) for c in SF] for r in raw]
    j = df.set_index("id_str").loc["J104924.86-002547.5"]
    assert j[SF].tolist() == [12, 26, 2, 40]
    assert j["file_loc"] == "images/J104924.86-002547.5.png"
    assert all((DECALS.parent / f).is_file() for f in df["file_loc"])


def test_gz1_classes_sample():
    df, skipped = read_catalog(GZ1)
    assert skipped == [] and len(df) == 60
    assert "bar_total-votes" not in df  # GZ1 never asked about bars
    assert all((GZ1.parent / f).is_file() for f in df["file_loc"])
    first = df.iloc[0]  # hand-checked: first row of the shipped catalog.csv
    assert (first["id_str"], first["gz1_class"]) == ("587724198279184570", "spiral_anticlockwise")
    by_class = df.groupby("gz1_class")[vote_columns(["smooth-or-featured", "disk-edge-on"])]
    expected = {  # smooth, featured, artifact, N | edge-on yes, no, N
        "elliptical": [1, 0, 0, 1, 0, 0, 0],
        "spiral_clockwise": [0, 1, 0, 1, 0, 1, 1],
        "spiral_anticlockwise": [0, 1, 0, 1, 0, 1, 1],
        "edge_on": [0, 1, 0, 1, 1, 0, 1],
        "dont_know": [0, 0, 1, 1, 0, 0, 0],
        "merger": [0, 0, 0, 0, 0, 0, 0],
    }
    for name, votes in by_class:
        assert len(votes) == 10
        assert (votes.values == expected[name]).all(), name


def test_class_map_override_and_unknown_class(tmp_path):
    everything_artifact = {c: {"smooth-or-featured_artifact": 1} for c in GZ1_CLASS_MAP}
    df, _ = read_catalog(GZ1, class_map=everything_artifact)
    assert df["smooth-or-featured_artifact"].eq(1).all() and "disk-edge-on_yes" not in df
    path = tmp_path / "c.csv"
    path.write_text("objid,gz1_class\n11,elliptical\n12,lenticular\n")
    with pytest.raises(ValueError, match=r"row 1 \(id_str '12'\).*'lenticular'"):
        read_catalog(path)
    df, skipped = read_catalog(path, on_error="skip")
    assert df["id_str"].tolist() == ["11"] and skipped[0]["row"] == 1
    with pytest.raises(ValueError, match="bogus"):
        read_catalog(path, class_map={"elliptical": {"bogus": 1}})


# --- formats, parquet, float counts ----------------------------------------------------------


def test_format_argument(tmp_path):
    with pytest.raises(ValueError, match=r"format.*'auto', 'gz2', 'decals', 'classes'.*'gz3'"):
        read_catalog(DECALS, format="gz3")
    assert FORMATS == ("auto", "gz2", "decals", "classes", "label")
    with pytest.raises(ValueError, match="on_error"):
        read_catalog(DECALS, on_error="ignore")
    with pytest.raises(ValueError, match=r"catalog\.csv has no vote columns.*'gz2'"):
        read_catalog(DECALS, format="gz2")
    path = tmp_path / "mystery.csv"
    path.write_text("objid,colour\n1,red\n")
    with pytest.raises(ValueError, match=r"cannot tell the format of .*mystery\.csv"):
        read_catalog(path)


def test_float_counts_become_int_and_parquet_round_trip(tmp_path):
    path = write_csv(tmp_path / "f.csv", [["a", 18.0, 19.0, 3.0, 40.0], ["b", 1.0, 2.0, 0.0, 3.0]])
    df, _ = read_catalog(path, format="decals")
    assert df[SF].dtypes.eq("int64").all() and df[SF].values.tolist()[1] == [1, 2, 0, 3]
    df.to_parquet(tmp_path / "f.parquet")
    again, _ = read_catalog(tmp_path / "f.parquet")
    pd.testing.assert_frame_equal(again, df, check_dtype=False)


def test_float_ids_in_parquet_are_refused(tmp_path):
    frame = pd.DataFrame({"objid": [8.647474690312307e18], **{c: [1] for c in SF}})
    frame.to_parquet(tmp_path / "f.parquet")
    with pytest.raises(ValueError, match=r"'objid'.*f\.parquet.*floats"):
        read_catalog(tmp_path / "f.parquet")


# --- bad rows -------------------------------------------------------------------------------

BAD_ROWS = [
    ([5, 50, 0, 40], "smooth-or-featured_featured-or-disk > smooth-or-featured_total-votes"),
    ([20, 20, 5, 40], "sum to more than its total"),
    ([-1, 30, 0, 29], "smooth-or-featured_smooth is negative"),
    ([None, 30, 0, 30], "smooth-or-featured_smooth is missing or not finite"),
    (["many", 30, 0, 30], "smooth-or-featured_smooth is missing or not finite"),
    ([12.5, 27.5, 0, 40], "smooth-or-featured_smooth is not a whole number"),
]


@pytest.mark.parametrize("counts, reason", BAD_ROWS)
def test_bad_row_raises_naming_row_and_id(tmp_path, counts, reason):
    path = write_csv(tmp_path / "bad.csv", [["ok1", 10, 30, 0, 40], ["bad7", *counts]])
    with pytest.raises(ValueError, match=r"bad\.csv") as err:
        read_catalog(path)
    assert "row 1 (id_str 'bad7')" in str(err.value) and reason in str(err.value)
    df, skipped = read_catalog(path, on_error="skip")
    assert df["id_str"].tolist() == ["ok1"]
    assert [(s["row"], s["id_str"]) for s in skipped] == [(1, "bad7")]
    assert reason in skipped[0]["reason"]


def test_gz2_negative_count_is_reported(tmp_path):
    raw = pd.read_csv(GZ2, dtype={"objid": str}, nrows=5)
    raw.loc[3, "t03_bar_a06_bar_count"] = -2
    raw.to_csv(tmp_path / "gz2.csv", index=False)
    with pytest.raises(ValueError, match=rf"row 3 \(id_str '{raw.objid[3]}'\): bar_yes is neg"):
        read_catalog(tmp_path / "gz2.csv")


def test_duplicate_ids_are_named(tmp_path):
    path = write_csv(tmp_path / "d.csv", [["x", 1, 1, 0, 2], ["y", 1, 1, 0, 2], ["x", 2, 0, 0, 2]])
    with pytest.raises(ValueError, match=r"duplicated ids: \['x'\]") as err:
        read_catalog(path)
    assert "row 0 (id_str 'x')" in str(err.value) and "row 2 (id_str 'x')" in str(err.value)
    df, skipped = read_catalog(path, on_error="skip")  # every copy goes: which one is right?
    assert df["id_str"].tolist() == ["y"] and [s["row"] for s in skipped] == [0, 2]


def test_missing_id_is_a_bad_row(tmp_path):
    path = write_csv(tmp_path / "m.csv", [["x", 1, 1, 0, 2], [None, 1, 1, 0, 2]])
    with pytest.raises(ValueError, match=r"row 1 \(id_str None\): id_str is missing"):
        read_catalog(path)


def test_all_rows_bad_raises_even_when_skipping(tmp_path):
    path = write_csv(tmp_path / "all.csv", [["x", -1, 1, 0, 0]])
    with pytest.raises(ValueError, match="every row is bad"):
        read_catalog(path, on_error="skip")


# --- bad files ------------------------------------------------------------------------------


def test_missing_column_is_named_with_the_file(tmp_path):
    path = write_csv(tmp_path / "nocol.csv", [["x", 1, 1, 2]], ["id_str", *SF[:2], SF[3]])
    with pytest.raises(ValueError, match=r"nocol\.csv.*'smooth-or-featured_artifact'"):
        read_catalog(path)
    path = write_csv(tmp_path / "noid.csv", [[1, 1, 0, 2]], SF)
    with pytest.raises(ValueError, match=r"noid\.csv has no id column"):
        read_catalog(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "zero.csv").write_text("")
    with pytest.raises(ValueError, match=r"zero\.csv is empty"):
        read_catalog(tmp_path / "zero.csv")
    (tmp_path / "header.csv").write_text(",".join(["id_str", *SF]) + "\n")
    with pytest.raises(ValueError, match=r"header\.csv is empty"):
        read_catalog(tmp_path / "header.csv")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"):
        read_catalog(tmp_path / "nowhere.csv")


@pytest.mark.parametrize(
    "column", ["smooth-or-featured_smooth_fraction", "t01_smooth_or_features_a01_smooth_debiased",
               "Class1.1"],
)  # fmt: skip
def test_vote_fractions_without_counts_say_so_and_how_to_give_n(column):
    with pytest.raises(ValueError) as err:
        catalogs.detect_format(["id_str", "file_loc", column], "fractions.csv")
    text = str(err.value)
    assert f"fractions.csv has vote fractions ({column!r}) but no vote counts" in text
    assert "k = round(fraction x N)" in text and "cannot tell the format" not in text
    with pytest.raises(ValueError, match="cannot tell the format"):
        catalogs.detect_format(["id_str", "file_loc", "redshift"], "plain.csv")


def test_the_whole_gz2_tree_is_read_from_the_shipped_table():
    from zoolib import paths
    from zoolib.votes import trees

    table = paths.RAW_DIR / "gz2_stripe82" / "table5_counts.csv.gz"
    three, _ = read_catalog(table)
    whole, _ = read_catalog(table, tree="gz2")
    assert set(trees.GZ2.columns()) <= set(whole.columns)
    assert len(whole) == len(three)
    for n in trees.GZ2.nodes:  # each total is the sum of its answers, as for the three
        assert (whole[n.answer_columns].sum(axis=1) == whole[n.total_column]).all()
    for c in three.columns:  # the three questions read the same either way
        pd.testing.assert_series_equal(three[c], whole[c])
    # the tree's order shows in the counts: who is asked the bar question was asked edge-on
    assert (whole["bar_total-votes"] <= whole["disk-edge-on_total-votes"]).mean() > 0.99
    assert whole["spiral-winding_total-votes"].sum() > 0


def test_a_users_tree_is_read_from_its_columns_and_classes_refuse_other_trees(tmp_path):
    from zoolib.votes import trees

    path = tmp_path / "rings.csv"
    pd.DataFrame({"id_str": ["a", "b", "c"], "ring_yes": [3, 0, 5], "ring_no": [2, 4, 0],
                  "ring_total-votes": [5, 4, 5]}).to_csv(path, index=False)  # fmt: skip
    frame, _ = read_catalog(path, tree=trees.from_columns(pd.read_csv(path).columns))
    assert frame["ring_yes"].tolist() == [3, 0, 5] and frame["ring_yes"].dtype == "int64"
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"id_str": ["a"], "ring_yes": [6], "ring_no": [0],
                  "ring_total-votes": [5]}).to_csv(bad, index=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"row 0 \(id_str 'a'\): ring_yes > ring_total-votes"):
        read_catalog(bad, tree=trees.one_label("ring"))
    classes = tmp_path / "classes.csv"
    pd.DataFrame({"id_str": ["a"], "class": ["elliptical"]}).to_csv(classes, index=False)
    with pytest.raises(ValueError, match="consensus classes give the three questions"):
        read_catalog(classes, tree="gz2")


def test_a_new_label_in_a_zero_one_column_reads_as_one_vote(tmp_path):
    from zoolib.votes import trees

    path = tmp_path / "ring.csv"
    path.write_text("id_str,file_loc,ring\na,a.png,1\nb,b.png,0\nc,c.png,yes\nd,d.png,maybe\n")
    tree = trees.named("label:ring")
    assert tree == trees.one_label("ring")
    assert catalogs.detect_format(["id_str", "ring"], path, tree) == "label"
    with pytest.raises(ValueError, match=r"row 3 \(id_str 'd'\): ring is 'maybe'"):
        catalogs.read_catalog(path, tree=tree)
    frame, skipped = catalogs.read_catalog(path, tree=tree, on_error="skip")
    assert [s["id_str"] for s in skipped] == ["d"]
    assert frame["ring_yes"].tolist() == [1, 0, 1] and frame["ring_no"].tolist() == [0, 1, 0]
    assert frame["ring_total-votes"].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="format 'label' needs a one-question yes/no tree"):
        catalogs.read_catalog(path, format="label")


def test_a_label_is_named_as_the_user_names_its_column(tmp_path):
    """GZ1's 0/1 column edge_on: tree "label:edge_on" reads it as question edge-on (the column
    keeps its name); a name no question can have is refused up front with one that can; a 0/1
    column without tree "label:..." is named in the format error with how to read it, and the
    error names notebook 01's parameters."""
    from zoolib.votes import trees

    path = tmp_path / "gz1.csv"
    path.write_text("objid,file_loc,edge_on\n1,a.png,1\n2,b.png,0\n3,c.png,1\n")
    tree = trees.named("label:edge_on")
    assert tree.name == "edge_on" and tree.questions == ["edge-on"]
    frame, _ = catalogs.read_catalog(path, tree=tree)
    assert frame["edge-on_yes"].tolist() == [1, 0, 1]
    assert frame["edge-on_total-votes"].tolist() == [1, 1, 1]
    both = tmp_path / "both.csv"  # the column as typed wins over one that reads the same
    both.write_text("objid,file_loc,edge_on,Edge_On\n1,a.png,1,0\n")
    assert catalogs.read_catalog(both, tree=tree)[0]["edge-on_yes"].tolist() == [1]
    with pytest.raises(ValueError, match="all read as question 'edge-on': name the column"):
        catalogs.label_column(["Edge_On", "EDGE_ON"], tree)
    with pytest.raises(ValueError, match=r"label column 'Ring\?' .* e\.g\. to 'ring'"):
        trees.named("label:Ring?")
    with pytest.raises(ValueError) as err:
        catalogs.read_catalog(path)
    text = str(err.value)
    assert "Column 'edge_on' holds only 0/1 values" in text and 'tree: "label:edge_on"' in text
    assert "notebook 01's catalog_format" in text and "pass format=" not in text
