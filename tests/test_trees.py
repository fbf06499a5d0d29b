"""zoolib.votes.trees: the shipped decision trees against the shipped GZ2 table, and users'
trees."""

import gzip

import pytest

from zoolib import paths
from zoolib.data import catalogs
from zoolib.votes import schema, trees

GZ2_TABLE = paths.RAW_DIR / "gz2_stripe82" / "table5_counts.csv.gz"


def test_gz2_maps_every_count_column_of_the_shipped_table_once():
    with gzip.open(GZ2_TABLE, "rt") as f:
        header = f.readline().strip().split(",")
    raw = [c for c in header if c.endswith("_count")]
    assert len(trees.GZ2.nodes) == 11 and trees.GZ2.n_answers == 37 == len(raw)
    assert sorted(trees.GZ2_COLUMNS.values()) == sorted(raw)
    assert list(trees.GZ2_COLUMNS) == [c for n in trees.GZ2.nodes for c in n.answer_columns]
    # answers are named after the raw columns (a few by hand: GZ2's "a02_features_or_disk")
    assert trees.GZ2_COLUMNS["odd-feature_dust-lane"] == "t08_odd_feature_a38_dust_lane_count"
    assert trees.GZ2_COLUMNS["spiral-arm-count_cant-tell"] == "t11_arms_number_a37_cant_tell_count"
    assert trees.GZ2.node("anything-odd").asked_if == (
        ("smooth-or-featured", "smooth"), ("smooth-or-featured", "featured-or-disk"))  # fmt: skip


def test_the_three_questions_are_a_subset_of_gz2_with_the_same_columns():
    three = trees.tree("three")
    assert three.questions == list(schema.QUESTIONS)
    for node in three.nodes:
        assert node == trees.GZ2.node(node.name)
        assert node.answer_columns == schema.question(node.name).answer_columns
    assert catalogs.GZ2_COLUMNS == {c: trees.GZ2_COLUMNS[c] for c in schema.vote_columns()
                                    if not c.endswith("total-votes")}  # fmt: skip
    assert trees.GZ2.subset("two", ["smooth-or-featured", "disk-edge-on"]).questions == [
        "smooth-or-featured", "disk-edge-on"]  # fmt: skip
    with pytest.raises(ValueError, match="asked after 'disk-edge-on', which is not an earlier"):
        trees.GZ2.subset("orphan", ["smooth-or-featured", "bar"])


def test_decals_dr5_has_ten_questions_and_34_answers():
    assert len(trees.DECALS.nodes) == 10 and trees.DECALS.n_answers == 34
    assert trees.DECALS.node("bar").answers == ("strong", "weak", "no")
    assert "merging_major-disturbance" in trees.DECALS.columns()
    with pytest.raises(ValueError, match=r"unknown tree 'gz3'; did you mean 'gz2'\? shipped: "):
        trees.tree("gz3")


def test_a_users_tree_from_yaml_and_its_errors(tmp_path):
    good = tmp_path / "rings.yaml"
    good.write_text("ring: {answers: [yes, no]}\n"  # unquoted: YAML's booleans, read as yes/no
                    "ring-type: {answers: [inner, outer, both], asked_if: [[ring, yes]]}\n")
    tree = trees.from_yaml(good)
    assert tree.name == "rings" and tree.questions == ["ring", "ring-type"]
    assert tree.columns() == ["ring_yes", "ring_no", "ring_total-votes", "ring-type_inner",
                              "ring-type_outer", "ring-type_both",
                              "ring-type_total-votes"]  # fmt: skip
    bad = {
        "ring: {answers: [yes]}": "needs two or more distinct answers",
        "ring: {answers: [yes, no], asked_if: [[bar, yes]]}": "asked after 'bar', which is not",
        "a: {answers: [x, y]}\nb: {answers: [u, v], asked_if: [[a, z]]}": "'a' has no answer 'z'",
        "Ring: {answers: [yes, no]}": "names are lower case",
        "ring: {answer: [yes, no]}": r"needs 'answers: \[\.\.\.\]'",
        "ring: [": "cannot read the tree",
    }
    for text, match in bad.items():
        (tmp_path / "bad.yaml").write_text(text + "\n")
        with pytest.raises(ValueError, match=match) as err:
            trees.from_yaml(tmp_path / "bad.yaml")
        assert "bad.yaml" in str(err.value)


def test_trees_from_count_columns_and_a_single_label():
    columns = ["id_str", "ring_yes", "ring_no", "ring_total-votes", "redshift",
               "smooth-or-featured_smooth", "smooth-or-featured_featured-or-disk",
               "smooth-or-featured_artifact", "smooth-or-featured_total-votes"]  # fmt: skip
    tree = trees.from_columns(columns)
    assert tree.questions == ["ring", "smooth-or-featured"]
    assert tree.node("smooth-or-featured").answers == ("smooth", "featured-or-disk", "artifact")
    with pytest.raises(ValueError, match="no '<question>_<answer>' count columns"):
        trees.from_columns(["id_str", "ring"], "rings.csv")
    assert trees.one_label("ring").columns() == ["ring_yes", "ring_no", "ring_total-votes"]


def test_the_share_asked_follows_the_tree_and_matches_schema_for_the_three():
    import numpy as np

    rng = np.random.default_rng(0)
    p = {n.name: rng.dirichlet(np.ones(len(n.answers)), 5) for n in trees.GZ2.nodes}
    share = trees.GZ2.asked_share(p)
    np.testing.assert_allclose(share["smooth-or-featured"], 1.0)
    np.testing.assert_allclose(share["disk-edge-on"], p["smooth-or-featured"][:, 1])
    face_on = p["smooth-or-featured"][:, 1] * p["disk-edge-on"][:, 1]
    np.testing.assert_allclose(share["bar"], face_on)
    np.testing.assert_allclose(share["spiral-winding"], face_on * p["has-spiral-arms"][:, 0])
    # two parents: everyone but those who said star or artifact
    np.testing.assert_allclose(share["anything-odd"], 1 - p["smooth-or-featured"][:, 2])
    # zoo's three: the same as schema.share_asked with its binary reduction
    yes = {"smooth-or-featured": p["smooth-or-featured"][:, 0], "disk-edge-on":
           p["disk-edge-on"][:, 0], "bar": p["bar"][:, 0]}  # fmt: skip
    binary = {q: np.stack([v, 1 - v], -1) for q, v in yes.items()}
    three = trees.Tree("two-answer", tuple(
        trees.Node(n.name, (n.answers[0], "other"), tuple(
            (r, a if a == trees.THREE.node(r).answers[0] else "other") for r, a in n.asked_if))
        for n in trees.THREE.nodes))  # fmt: skip
    got = three.asked_share(binary)
    for q in yes:
        np.testing.assert_allclose(got[q], schema.share_asked(q, yes.get))


def test_fraction_columns_are_not_answers():
    columns = ["bar_yes", "bar_no", "bar_total-votes", "bar_fraction", "bar_debiased"]
    assert trees.from_columns(columns).node("bar").answers == ("yes", "no")


def test_the_part_of_a_tree_for_some_questions_drops_links_to_parents_left_out():
    part = trees.GZ2.part(["bar", "smooth-or-featured"])
    assert part.questions == ["smooth-or-featured", "bar"]  # tree order
    assert part.node("bar").asked_if == ()  # its parent, disk-edge-on, is not in the part
    assert trees.THREE.part(trees.THREE.questions) == trees.THREE
