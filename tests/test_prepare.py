"""End to end: catalogue + images -> processed dataset, bad input, notebook 01 via the runner."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from zoolib import paths, prepare
from zoolib.data import processed
from zoolib.reports import runner

DECALS = paths.RAW_DIR / "gz_decals_dr5" / "catalog.csv"


@pytest.fixture
def mini_catalog(tmp_path):
    """A DECaLS-style catalogue of 4 real galaxies with their images, copied to tmp_path."""
    src = pd.read_csv(DECALS).head(4)
    (tmp_path / "images").mkdir()
    for f in src["file"]:
        shutil.copy(DECALS.parent / f, tmp_path / f)
    src.to_csv(tmp_path / "cat.csv", index=False)
    return tmp_path


def _prepare(folder, **kw):
    return prepare.prepare_catalog("mini", folder / "cat.csv", root=folder / "out", **kw)


def test_real_catalogue_becomes_a_dataset(mini_catalog):
    _prepare(mini_catalog, image_size=48, crop_fraction=0.5, split_fractions=(0.5, 0.25, 0.25))
    ds = processed.load_processed("mini", root=mini_catalog / "out", verify=True)
    assert ds.images.shape == (4, 48, 48, 1)
    assert ds.questions == ["smooth-or-featured"]
    raw = pd.read_csv(mini_catalog / "cat.csv")
    np.testing.assert_array_equal(
        ds.catalog["smooth-or-featured_smooth"], raw["smooth-or-featured_smooth"]
    )
    assert ds.manifest["parameters"]["crop_fraction"] == 0.5
    assert ds.manifest["parameters"]["id_column"] == "iauname"  # said, not silently renamed


def _break(folder, how):
    cat = pd.read_csv(folder / "cat.csv")
    target = folder / cat["file"].iloc[2]
    if how == "missing":
        target.unlink()
    elif how == "corrupt":
        target.write_bytes(b"this is not a png")
    elif how == "small":
        Image.new("RGB", (20, 20)).save(target)
    return cat, target


@pytest.mark.parametrize("how", ["missing", "corrupt", "small"])
def test_bad_image_names_the_file_and_writes_nothing(mini_catalog, how):
    _, target = _break(mini_catalog, how)
    with pytest.raises((ValueError, FileNotFoundError, OSError)) as err:
        _prepare(mini_catalog, image_size=48)
    assert target.name in str(err.value)
    assert not (mini_catalog / "out" / "mini").exists()
    assert (
        not any((mini_catalog / "out").glob(".mini*")) if (mini_catalog / "out").exists() else True
    )


def test_skip_drops_bad_images_and_lists_them(mini_catalog):
    cat, target = _break(mini_catalog, "corrupt")
    _prepare(mini_catalog, image_size=48, on_error="skip", split_fractions=(1.0, 0.0, 0.0))
    ds = processed.load_processed("mini", root=mini_catalog / "out")
    assert len(ds.catalog) == 3 and cat["iauname"].iloc[2] not in set(ds.catalog["id_str"])
    (skipped,) = ds.manifest["skipped"]
    assert skipped["id_str"] == cat["iauname"].iloc[2] and target.name in skipped["file"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.assign(**{"smooth-or-featured_smooth": 99}), "smooth-or-featured_smooth"),
        (lambda c: pd.concat([c, c.iloc[:1]]), "J104924.86-002547.5"),
        (
            lambda c: c.drop(columns="smooth-or-featured_total-votes"),
            "smooth-or-featured_total-votes",
        ),
        (lambda c: c.iloc[:0], "empty"),
    ],
)
def test_bad_catalogue_rows_are_named(mini_catalog, edit, message):
    cat = pd.read_csv(mini_catalog / "cat.csv")
    edit(cat).to_csv(mini_catalog / "cat.csv", index=False)
    with pytest.raises(ValueError, match=message):
        _prepare(mini_catalog)
    assert not (mini_catalog / "out" / "mini").exists()


def test_row_without_an_image_file_is_named(mini_catalog):
    cat = pd.read_csv(mini_catalog / "cat.csv")
    cat.loc[1, "file"] = None
    cat.to_csv(mini_catalog / "cat.csv", index=False)
    with pytest.raises(ValueError, match=r"row 1 \(id_str 'J.*'\): no image file named"):
        _prepare(mini_catalog)
    _prepare(mini_catalog, on_error="skip", split_fractions=(1.0, 0.0, 0.0))
    ds = processed.load_processed("mini", root=mini_catalog / "out")
    assert len(ds.catalog) == 3 and ds.manifest["skipped"][0]["id_str"] == cat.loc[1, "iauname"]


def test_no_loadable_image_at_all(mini_catalog):
    for f in (mini_catalog / "images").iterdir():
        f.write_bytes(b"junk")
    with pytest.raises(ValueError, match="none of the 4 images could be loaded"):
        _prepare(mini_catalog, on_error="skip")


def test_unknown_format_and_imageless_catalogue(mini_catalog):
    with pytest.raises(ValueError, match="format"):
        _prepare(mini_catalog, catalog_format="hubble")
    gz2 = paths.RAW_DIR / "gz2_stripe82" / "table5_counts.csv.gz"
    with pytest.raises(ValueError, match="names no image files"):
        prepare.prepare_catalog("gz2", gz2, root=mini_catalog / "out")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A scratch outputs root: the notebooks read what ships from the checkout, write here."""
    monkeypatch.setenv("ZOO_OUTPUT_ROOT", str(tmp_path))
    return tmp_path


@pytest.mark.slow
def test_notebook_01_runs_on_a_real_catalogue(project, tmp_path):
    params = {
        "01_data_prep": {
            "source": str(DECALS),
            "image_size": 32,
            "crop_fraction": 0.6,
            "name": "decals-mini",
            "split_fractions": [0.6, 0.2, 0.2],
        }
    }
    (tmp_path / "real.yaml").write_text(json.dumps(params))
    runner.run(str(tmp_path / "real.yaml"), only=["01"], reports_dir=project / "reports")
    manifest = json.loads(
        (project / "data" / "processed" / "decals-mini" / "manifest.json").read_text()
    )
    assert manifest["n_galaxies"] == 28 and manifest["questions"] == ["smooth-or-featured"]


def test_every_bad_image_row_is_named_in_one_error_and_nothing_is_written(mini_catalog):
    cat = pd.read_csv(mini_catalog / "cat.csv")
    cat.loc[0, "file"] = "gone.png"
    cat.loc[2, "file"] = "../outside.png"
    (mini_catalog.parent / "outside.png").write_bytes(
        (mini_catalog / cat.loc[1, "file"]).read_bytes()
    )
    cat.to_csv(mini_catalog / "cat.csv", index=False)
    with pytest.raises(ValueError) as err:
        _prepare(mini_catalog, image_size=48)
    text = str(err.value)
    assert text.startswith("2 bad image file row(s) of 4") and 'on_error "skip"' in text
    assert f"row 0 (id_str {cat.iauname[0]!r})" in text and "gone.png: image file not found" in text
    assert f"row 2 (id_str {cat.iauname[2]!r})" in text and "leads outside the images root" in text
    assert not (mini_catalog / "out" / "mini").exists()
    # skipped: listed with row, id, file and reason; allowed outside: kept
    _prepare(mini_catalog, image_size=48, on_error="skip", split_fractions=(1.0, 0.0, 0.0))
    skipped = processed.load_processed("mini", root=mini_catalog / "out").manifest["skipped"]
    assert [(s["row"], s["id_str"]) for s in skipped] == [(0, cat.iauname[0]), (2, cat.iauname[2])]
    assert all(s["file"] and s["reason"] for s in skipped)
    _prepare(mini_catalog, image_size=48, on_error="skip", allow_outside_root=True,
             split_fractions=(1.0, 0.0, 0.0))  # fmt: skip
    ds = processed.load_processed("mini", root=mini_catalog / "out")
    assert cat.iauname[2] in set(ds.catalog.id_str) and len(ds.manifest["skipped"]) == 1


def test_relative_paths_are_relative_to_the_project_root_wherever_we_run(
    mini_catalog, tmp_path_factory, monkeypatch
):
    """The defect: notebook 01 joined `source` to the project root but used `images_root` from
    the kernel's folder. Now both (and every CLI option) go through paths.resolve."""
    monkeypatch.setattr(paths, "PROJECT_ROOT", mini_catalog)
    elsewhere = tmp_path_factory.mktemp("notebooks")  # the kernel's working folder
    monkeypatch.chdir(elsewhere)
    assert paths.resolve("cat.csv") == mini_catalog / "cat.csv"
    assert paths.resolve(mini_catalog / "cat.csv") == mini_catalog / "cat.csv"
    moved = mini_catalog / "pictures"
    (mini_catalog / "images").rename(moved)
    with pytest.raises(ValueError) as err:  # looked for under the project root, not the cwd
        prepare.prepare_catalog("mini", "cat.csv", images_root=".", image_size=48,
                                root=mini_catalog / "out")  # fmt: skip
    assert str(mini_catalog / "images") in str(err.value) and str(elsewhere) not in str(err.value)
    cat = pd.read_csv(mini_catalog / "cat.csv")
    cat["file"] = cat["file"].str.replace("images/", "", regex=False)
    cat.to_csv(mini_catalog / "cat.csv", index=False)
    prepare.prepare_catalog("mini", "cat.csv", images_root="pictures", image_size=48,
                            split_fractions=(1.0, 0.0, 0.0), root=mini_catalog / "out")  # fmt: skip
    assert len(processed.load_processed("mini", root=mini_catalog / "out").catalog) == 4


def test_symlinked_image_folders_and_padded_names_are_read(mini_catalog, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("big_disk")
    (mini_catalog / "images").rename(elsewhere / "images")
    (mini_catalog / "images").symlink_to(elsewhere / "images")  # a link inside the root: fine
    cat = pd.read_csv(mini_catalog / "cat.csv")
    cat.loc[0, "file"] = "  " + cat.loc[0, "file"] + " "  # stray spaces around a name
    cat.to_csv(mini_catalog / "cat.csv", index=False)
    _prepare(mini_catalog, image_size=48, split_fractions=(1.0, 0.0, 0.0))
    ds = processed.load_processed("mini", root=mini_catalog / "out")
    assert len(ds.catalog) == 4 and ds.manifest["skipped"] == []


def test_the_image_recipe_says_simulated_or_real_and_the_crop(mini_catalog):
    from zoolib.data import images

    assert prepare.image_recipe({"source": "synthetic", "parameters": {}}) == {
        "training_images": "simulated", "crop_fraction": None, "stretch": None}  # fmt: skip
    _prepare(mini_catalog, image_size=48, crop_fraction=0.5, split_fractions=(0.5, 0.25, 0.25))
    manifest = processed.load_processed("mini", root=mini_catalog / "out").manifest
    assert prepare.image_recipe(manifest) == {
        "training_images": "real", "crop_fraction": 0.5, "stretch": images.STRETCH}  # fmt: skip


def test_the_dataset_records_its_tree(tmp_path):
    from zoolib.votes import trees

    table = paths.RAW_DIR / "gz2_stripe82" / "table5_counts.csv.gz"
    raw = pd.read_csv(table, nrows=6)
    (tmp_path / "images").mkdir()
    for i in range(len(raw)):
        pixels = np.full((80, 80, 3), 40 * i, np.uint8)
        Image.fromarray(pixels).save(tmp_path / "images" / f"{i}.png")
    raw["file_loc"] = [f"images/{i}.png" for i in range(len(raw))]
    raw.to_csv(tmp_path / "gz2.csv", index=False)
    prepare.prepare_catalog("whole", tmp_path / "gz2.csv", image_size=16, tree="gz2",
                            split_fractions=(0.5, 0.5, 0.0), root=tmp_path / "out")  # fmt: skip
    ds = processed.load_processed("whole", root=tmp_path / "out")
    assert ds.tree.questions == trees.GZ2.questions and ds.tree.n_answers == 37
    assert set(trees.GZ2.columns()) <= set(ds.catalog.columns)
    assert ds.questions == trees.GZ2.questions  # one list: the tree's
    assert ds.zoo_questions == ["smooth-or-featured", "disk-edge-on", "bar"]  # the binomial three
    assert ds.manifest["questions"] == ds.questions
    prepare.prepare_catalog("three", tmp_path / "gz2.csv", image_size=16,
                            split_fractions=(0.5, 0.5, 0.0), root=tmp_path / "out")  # fmt: skip
    assert processed.load_processed("three", root=tmp_path / "out").tree == trees.THREE
    old = processed.load_processed("three", root=tmp_path / "out")
    old.manifest.pop("tree")  # a dataset written before trees were recorded
    assert old.tree.questions == trees.THREE.questions


def test_notebook_01_reads_a_new_label_from_a_zero_one_column(project, tmp_path):
    raw = pd.read_csv(DECALS)
    smooth = raw["smooth-or-featured_smooth"] / raw["smooth-or-featured_total-votes"]
    label = raw[["iauname", "file"]].assign(ring=(smooth > 0.5).astype(int))
    label.to_csv(tmp_path / "ring.csv", index=False)
    params = {"01_data_prep": {"source": str(tmp_path / "ring.csv"), "images_root": str(
        DECALS.parent), "tree": "label:ring", "image_size": 32, "name": "ring-mini"}}
    (tmp_path / "ring.yaml").write_text(json.dumps(params))
    runner.run(str(tmp_path / "ring.yaml"), only=["01"], reports_dir=project / "reports")
    ds = processed.load_processed("ring-mini", root=project / "data" / "processed")
    assert ds.questions == ds.tree.questions == ds.manifest["questions"] == ["ring"]
    assert ds.zoo_questions == []  # not one of zoo's yes/no questions
    np.testing.assert_array_equal(ds.catalog["ring_yes"], label["ring"])
    metrics = json.loads((project / "reports" / "metrics" / "01_data_prep.json").read_text())
    assert set(metrics["headroom"]["baseline"]) == {"ring_yes", "ring_no"}
