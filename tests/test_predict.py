"""zoolib.predict: shards equal one run, provenance, skip/overwrite, atomic output, errors."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from zoolib import paths, predict
from zoolib.__main__ import main
from zoolib.active import acquisition
from zoolib.cnn import cards, posteriors, similarity
from zoolib.cnn.models import build_bayesian_cnn, load_model
from zoolib.data import images

N_GALAXIES, BLOCK, T = 30, 4, 8  # 8 blocks, the last one of 2 galaxies
QUESTIONS = ["smooth-or-featured", "disk-edge-on", "bar"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """A tiny saved model (16 px greyscale, Q = 3), 30 PNGs of 24 px and a catalogue CSV."""
    root = tmp_path_factory.mktemp("predict")
    model = build_bayesian_cnn(16, 1, 3, filters=(4,) * 6, dense_units=8, seed=0)
    model.save(root / "model.keras")
    (root / "images").mkdir()
    rng = np.random.default_rng(7)
    for g in range(N_GALAXIES):
        pixels = rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"g{g:03d}.png")
    ids = [f"{10**18 + g}" for g in range(N_GALAXIES)]  # long ids must keep every digit
    files = [f"images/g{g:03d}.png" for g in range(N_GALAXIES)]
    pd.DataFrame({"id_str": ids, "ra": np.arange(N_GALAXIES), "file_loc": files}).to_csv(
        root / "catalog.csv", index=False
    )
    return {"root": root, "model": root / "model.keras", "catalog": root / "catalog.csv"}


def run(setup, out, **kwargs):
    kwargs = {"n_samples": T, "block_size": BLOCK, "progress": False, **kwargs}
    return predict.predict_catalog(setup["model"], setup["catalog"], out, **kwargs)


@pytest.fixture(scope="module")
def unsharded(setup) -> pd.DataFrame:
    return pd.read_parquet(run(setup, setup["root"] / "all.parquet"))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_shard_blocks_are_disjoint_and_cover():
    for n_rows, block, n_shards in [(30, 4, 3), (30, 4, 10), (1, 5, 3), (257, 256, 2), (7, 1, 7)]:
        shards = [predict.shard_blocks(n_rows, block, i, n_shards) for i in range(n_shards)]
        assert [b for s in shards for b in s] == list(range(-(-n_rows // block)))


@pytest.mark.parametrize("text", ["3/2", "2/2", "x", "1/0", "-1/2", "1-2", "1/2/3", ""])
def test_bad_shard_text(text):
    with pytest.raises(ValueError, match="--shard"):
        predict.parse_shard(text)


def test_shard_text():
    assert predict.parse_shard("0/1") == (0, 1)
    assert predict.parse_shard(" 3 / 4 ") == (3, 4)


def test_shards_equal_the_unsharded_run(setup, unsharded, tmp_path):
    parts = [
        pd.read_parquet(run(setup, tmp_path / f"p{i}.parquet", shard=f"{i}/3")) for i in (2, 0, 1)
    ]
    rows = [set(p["row"]) for p in parts]
    assert all(a.isdisjoint(b) for k, a in enumerate(rows) for b in rows[k + 1 :])
    assert set().union(*rows) == set(range(N_GALAXIES))
    assert all(0 < len(r) < N_GALAXIES for r in rows)
    combined = pd.concat(parts).sort_values("row").reset_index(drop=True)
    pd.testing.assert_frame_equal(combined, unsharded, check_exact=True)
    assert predict.read_metadata(tmp_path / "p1.parquet")["rows"] == [8, 20]  # blocks 2..4


def test_shards_beyond_the_blocks_are_empty(setup, unsharded, tmp_path):
    empty = pd.read_parquet(
        run(setup, tmp_path / "p.parquet", shard="0/10")
    )  # blocks 0*8//10 .. 1*8//10
    assert len(empty) == 0
    pd.testing.assert_frame_equal(empty, unsharded.iloc[:0])  # same columns and dtypes


def test_columns_and_values_match_sample_rho(setup, unsharded):
    yes = {"smooth-or-featured": "smooth", "disk-edge-on": "yes", "bar": "yes"}  # what rho is
    columns = ["id_str", "row"] + [
        name
        for q in QUESTIONS
        for name in [f"{q}_{yes[q]}_rho_{s}" for s in ("mean", "q05", "q50", "q95")]
        + [f"{q}_entropy", f"{q}_mi"]
    ]
    assert list(unsharded.columns) == columns
    assert predict.read_metadata(setup["root"] / "all.parquet")["answers"] == yes
    catalog = pd.read_csv(setup["catalog"], dtype={"id_str": str})
    assert unsharded["id_str"].tolist() == catalog["id_str"].tolist()
    assert unsharded["row"].tolist() == list(range(N_GALAXIES))
    pixels, _ = images.load_images([setup["root"] / f for f in catalog["file_loc"]], 16, 1)
    model = load_model(setup["model"])
    rho = np.concatenate([
        posteriors.sample_rho(model, pixels[s : s + BLOCK], T, BLOCK, predict.block_seed(0, b))
        for b, s in enumerate(range(0, N_GALAXIES, BLOCK))
    ])  # fmt: skip
    srt = np.sort(rho, axis=-1)  # T = 8: the 5% quantile is at position 0.35, the median at 3.5
    want = {
        "rho_mean": rho.sum(axis=-1) / T,
        "rho_q05": srt[..., 0] + 0.35 * (srt[..., 1] - srt[..., 0]),
        "rho_q50": (srt[..., 3] + srt[..., 4]) / 2,
        "rho_q95": srt[..., 6] + 0.65 * (srt[..., 7] - srt[..., 6]),
        "entropy": acquisition.predictive_entropy(rho, 40),
        "mi": acquisition.mutual_information(rho, 40),
    }
    for j, q in enumerate(QUESTIONS):
        for stat, value in want.items():
            got = unsharded[predict.column(q, stat)]
            np.testing.assert_allclose(got, value[:, j], rtol=1e-12)
    assert (unsharded["bar_yes_rho_q95"] > unsharded["bar_yes_rho_q05"]).any()  # dropout varies
    assert (unsharded["bar_mi"] > 0).any()


def test_cli_end_to_end_with_provenance(setup, unsharded, tmp_path, capsys):
    out = tmp_path / "preds_{i}of{n}.parquet"
    argv = ["predict", "--model", str(setup["model"]), "--catalog", str(setup["catalog"]),
            "--images-root", str(setup["root"]), "--samples", str(T), "--shard", "1/3",
            "--block-size", str(BLOCK), "--out", str(out), "--no-progress",
            "--precision", "float32"]  # fmt: skip
    assert main(argv) == 0
    assert "galaxies/s" in capsys.readouterr().out
    written = tmp_path / "preds_1of3.parquet"
    got = pd.read_parquet(written)
    pd.testing.assert_frame_equal(got, unsharded.iloc[8:20].reset_index(drop=True))
    meta = predict.read_metadata(written)
    assert meta["model_sha256"] == hashlib.sha256(setup["model"].read_bytes()).hexdigest()
    assert meta["catalog_sha256"] == hashlib.sha256(setup["catalog"].read_bytes()).hexdigest()
    assert (meta["shard"], meta["n_samples"], meta["seed"], meta["block_size"]) == ("1/3", T, 0, 4)
    assert (meta["questions"], meta["expected_votes"], meta["zoolib_version"]) == (
        QUESTIONS,
        40,
        "0.1.0",
    )
    assert meta["precision"] == "float32"
    assert main([*argv, "--shard", "3/3"]) == 1  # the last --shard wins
    assert "0-based" in capsys.readouterr().err


def test_existing_output_is_skipped_then_overwritten(setup, unsharded, tmp_path, capsys):
    out = tmp_path / "p.parquet"
    out.write_bytes(b"an earlier run")
    assert run(setup, out, shard="2/3") is None
    assert out.read_bytes() == b"an earlier run"
    assert "skipped" in capsys.readouterr().out
    assert run(setup, out, shard="2/3", overwrite=True) == out
    (tmp_path / "ref").touch()  # the output gets the usual permissions, not mkstemp's 0600
    assert out.stat().st_mode == (tmp_path / "ref").stat().st_mode
    pd.testing.assert_frame_equal(pd.read_parquet(out), unsharded.iloc[20:].reset_index(drop=True))
    assert leftovers(tmp_path) == []


def test_missing_image_names_file_and_galaxy(setup, tmp_path):
    catalog = pd.read_csv(setup["catalog"], dtype={"id_str": str})
    catalog.loc[13, "file_loc"] = "images/nowhere.png"
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    out = tmp_path / "p.parquet"
    with pytest.raises(FileNotFoundError, match=r"row 13 \(id_str '1000000000000000013'\)") as err:
        predict.predict_catalog(setup["model"], tmp_path / "catalog.csv", out, setup["root"])
    assert "nowhere.png" in str(err.value)
    assert not out.exists() and leftovers(tmp_path) == []


def test_unreadable_image_while_streaming(setup, tmp_path):
    shutil.copytree(setup["root"] / "images", tmp_path / "images")
    (tmp_path / "images" / "g017.png").write_text("not a png")
    shutil.copy(setup["catalog"], tmp_path / "catalog.csv")
    out = tmp_path / "p.parquet"
    with pytest.raises(ValueError, match=r"row 17 \(id_str '1000000000000000017'\).*g017\.png"):
        run({**setup, "catalog": tmp_path / "catalog.csv"}, out, workers=2)
    assert not out.exists() and leftovers(tmp_path) == []


def test_catalogue_checks(tmp_path):
    path = tmp_path / "c.csv"
    pd.DataFrame({"id_str": ["a", "b"], "ra": [1, 2]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="no image column.*file_loc"):
        predict.read_targets(path)
    pd.DataFrame({"id_str": ["a", "b", "a"], "file_loc": ["x", None, "z"]}).to_csv(
        path, index=False
    )
    with pytest.raises(ValueError, match=r"row 0 \(id_str 'a'\): duplicate(?s:.*)row 1 .*no image"):
        predict.read_targets(path)
    pd.DataFrame({"iauname": ["J1", "J2"], "file": ["1.png", "2.png"]}).to_parquet(
        tmp_path / "c.pq"
    )
    got = predict.read_targets(tmp_path / "c.pq")  # GZ DECaLS naming: iauname and file
    assert got.to_dict("list") == {"id_str": ["J1", "J2"], "file_loc": ["1.png", "2.png"]}


def test_question_names(tmp_path):
    model = tmp_path / "m.keras"
    assert list(predict.model_questions(model, 2, None, None)) == QUESTIONS[:2]
    with pytest.raises(ValueError, match="predicts 4 question"):
        predict.model_questions(model, 4, None, None)
    with pytest.raises(ValueError, match="predicts 2 question"):
        predict.model_questions(model, 2, ["bar"], None)
    with pytest.raises(ValueError, match="unknown question 'spiral'"):
        predict.model_questions(model, 1, ["spiral"], None)
    cards.ModelCard(["smooth-or-featured", "bar"], image_size=32, channels=1).write(model)
    assert (tmp_path / "m.card.json").is_file()
    card = cards.ModelCard.read_beside(model)
    assert predict.model_questions(model, 2, None, card) == {"smooth-or-featured": "smooth",
                                                             "bar": "yes"}  # fmt: skip
    assert predict.model_questions(model, 1, ["bar"], card) == {"bar": "yes"}
    tree = {"ring": {"answers": ["yes", "no"]}}
    cards.ModelCard(["ring"], image_size=32, channels=1, tree=tree).write(model)
    card = cards.ModelCard.read_beside(model)
    assert predict.model_questions(model, 1, None, card) == {"ring": "yes"}  # a new label


@pytest.mark.parametrize(
    "kwargs, match",
    [({"expected_votes": 0}, "--expected-votes"), ({"expected_votes": 40.5}, "--expected-votes"),
     ({"n_samples": 0}, "--samples"), ({"block_size": 0}, "--block-size"), ({"seed": -1}, "--seed"),
     ({"crop_fraction": 0}, "--crop-fraction")],
)  # fmt: skip
def test_bad_parameters(setup, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run(setup, tmp_path / "p.parquet", **kwargs)


def _copy(setup, tmp_path):
    shutil.copytree(setup["root"] / "images", tmp_path / "images")
    shutil.copy(setup["catalog"], tmp_path / "catalog.csv")
    return {**setup, "catalog": tmp_path / "catalog.csv"}


def test_every_unreadable_image_of_the_shard_is_listed_in_one_error(setup, tmp_path, capsys):
    """Two broken images in different blocks: one error names both (it named only the first),
    the first is announced at once, and the blocks before it are kept."""
    local = _copy(setup, tmp_path)
    for name in ("g005.png", "g017.png"):
        (tmp_path / "images" / name).write_text("not a png")
    out = tmp_path / "p.parquet"
    with pytest.raises(ValueError, match=r"^2 image\(s\) could not be read") as err:
        run(local, out, workers=2, prefetch=0)
    assert "row 5 (id_str '1000000000000000005')" in str(err.value)
    assert "row 17 (id_str '1000000000000000017')" in str(err.value)
    assert "reading the rest of the shard" in capsys.readouterr().err
    finished = sorted(p.name for p in predict.blocks_folder(out).glob("block_*.parquet"))
    assert finished == ["block_000000000.parquet"]  # rows 0-3; row 5 is in block 1


def test_a_failed_shard_keeps_its_blocks_and_resumes_identically(setup, unsharded, tmp_path):
    local = _copy(setup, tmp_path)
    good = (tmp_path / "images" / "g017.png").read_bytes()
    (tmp_path / "images" / "g017.png").write_bytes(good[: len(good) // 2])  # truncated
    out = tmp_path / "p.parquet"
    with pytest.raises(ValueError, match=r"row 17 \(id_str '1000000000000000017'\): .*g017\.png"):
        run(local, out, workers=1, prefetch=0)
    finished = sorted(p.name for p in predict.blocks_folder(out).glob("block_*.parquet"))
    assert finished == [f"block_{b:09d}.parquet" for b in range(4)]  # rows 0-15 are kept
    assert not out.exists()
    (tmp_path / "images" / "g017.png").write_bytes(good)  # fixed: the rerun resumes
    resumed = pd.read_parquet(run(local, out))
    pd.testing.assert_frame_equal(resumed, unsharded)
    assert not predict.blocks_folder(out).exists() and leftovers(tmp_path) == []


def test_a_killed_shard_resumes_identically(setup, unsharded, tmp_path):
    local = _copy(setup, tmp_path)
    out = tmp_path / "p.parquet"
    assert run(local, out, stop_after=3) is None  # killed after three blocks
    assert len(list(predict.blocks_folder(out).glob("block_*"))) == 3 and not out.exists()
    resumed = pd.read_parquet(run(local, out))
    pd.testing.assert_frame_equal(resumed, unsharded)
    # blocks of other settings are not reused
    run(local, tmp_path / "q.parquet", stop_after=3)
    other = pd.read_parquet(run(local, tmp_path / "q.parquet", seed=5))
    fresh = pd.read_parquet(run(local, tmp_path / "r.parquet", seed=5))
    pd.testing.assert_frame_equal(other, fresh)
    assert not np.allclose(other["bar_yes_rho_mean"], unsharded["bar_yes_rho_mean"])


def test_skip_leaves_out_bad_images_and_lists_them(setup, unsharded, tmp_path):
    local = _copy(setup, tmp_path)
    (tmp_path / "images" / "g005.png").write_bytes(b"")
    (tmp_path / "images" / "g021.png").unlink()
    out = run(local, tmp_path / "p.parquet", on_error="skip")
    table = pd.read_parquet(out)
    assert 5 not in set(table.row) and 21 not in set(table.row) and len(table) == N_GALAXIES - 2
    skipped = predict.read_metadata(out)["skipped"]
    assert [(s["row"], s["id_str"]) for s in skipped] == [
        (5, "1000000000000000005"),
        (21, "1000000000000000021"),
    ]
    assert "0 bytes" in skipped[0]["reason"] and "not found" in skipped[1]["reason"]
    # blocks without a bad image are the same as in the full run
    same = table[table.row >= 8].query("row < 20")
    expected = unsharded[unsharded.row.isin(same.row)].reset_index(drop=True)
    pd.testing.assert_frame_equal(same.reset_index(drop=True), expected)


def test_cli_on_error_skip(setup, tmp_path, capsys):
    local = _copy(setup, tmp_path)
    (tmp_path / "images" / "g003.png").write_bytes(b"")
    argv = ["predict", "--model", str(setup["model"]), "--catalog", str(local["catalog"]),
            "--samples", str(T), "--block-size", str(BLOCK), "--out", str(tmp_path / "p.parquet"),
            "--no-progress", "--precision", "float32"]  # fmt: skip
    assert main(argv) == 1
    assert "row 3 (id_str '1000000000000000003')" in capsys.readouterr().err
    assert main([*argv, "--on-error", "skip"]) == 0
    assert "1 skipped (listed in the output's metadata)" in capsys.readouterr().out
    assert [s["row"] for s in predict.read_metadata(tmp_path / "p.parquet")["skipped"]] == [3]


def test_a_path_outside_the_images_root_is_refused_as_in_notebook_01(setup, unsharded, tmp_path):
    local = _copy(setup, tmp_path)
    (tmp_path / "outside").mkdir()
    shutil.copy(tmp_path / "images" / "g006.png", tmp_path / "outside" / "g006.png")
    catalog = pd.read_csv(local["catalog"], dtype={"id_str": str})
    root = tmp_path / "images"  # paths relative to it; row 6 climbs out of it
    catalog["file_loc"] = catalog["file_loc"].str.replace("images/", "", regex=False)
    catalog.loc[6, "file_loc"] = "../outside/g006.png"
    catalog.to_csv(local["catalog"], index=False)
    out = tmp_path / "p.parquet"
    with pytest.raises(ValueError) as err:
        run(local, out, images_root=root)
    text = str(err.value)
    assert "row 6 (id_str '1000000000000000006')" in text
    assert "leads outside the images root" in text and "--allow-outside-root permits it" in text
    assert not out.exists() and leftovers(tmp_path) == []
    skipped = run(local, out, images_root=root, on_error="skip")
    meta = predict.read_metadata(skipped)
    assert [s["row"] for s in meta["skipped"]] == [6]
    assert "leads outside the images root" in meta["skipped"][0]["reason"]
    allowed = pd.read_parquet(run(local, tmp_path / "a.parquet", images_root=root,
                                  allow_outside_root=True))  # fmt: skip
    pd.testing.assert_frame_equal(allowed, unsharded)  # the same pixels, read from outside


def test_predict_applies_the_crop_the_model_was_trained_with(setup, tmp_path, recwarn):
    local = {**setup, "model": tmp_path / "model.keras"}
    shutil.copy(setup["model"], local["model"])
    cards.ModelCard(QUESTIONS, 16, 1, training_images="real", crop_fraction=0.7).write(
        local["model"]
    )
    carded = run(local, tmp_path / "card.parquet")
    assert predict.read_metadata(carded)["crop_fraction"] == 0.7
    assert not [w for w in recwarn if "crop" in str(w.message)]
    explicit = run(setup, tmp_path / "explicit.parquet", crop_fraction=0.7)  # no card: as told
    pd.testing.assert_frame_equal(pd.read_parquet(carded), pd.read_parquet(explicit))
    with pytest.warns(UserWarning, match=r"--crop-fraction 1 differs from the 0.7 the model"):
        whole = run(local, tmp_path / "whole.parquet", crop_fraction=1.0)
    assert predict.read_metadata(whole)["crop_fraction"] == 1.0
    assert predict.image_settings(None, None) == (1.0, [], [])  # no card: whole images
    assert cards.ModelCard.read_beside(setup["model"]) is None


def test_cli_warns_in_one_line_and_allows_outside_paths(setup, tmp_path, capsys):
    model = tmp_path / "model.keras"
    shutil.copy(setup["model"], model)
    cards.ModelCard(QUESTIONS, 16, 1, crop_fraction=0.5).write(model)
    argv = ["predict", "--model", str(model), "--catalog", str(setup["catalog"]),
            "--samples", "2", "--block-size", str(BLOCK), "--out", str(tmp_path / "p.parquet"),
            "--no-progress", "--precision", "float32", "--crop-fraction", "0.9"]  # fmt: skip
    with pytest.warns(UserWarning):
        assert main(argv) == 0
    help_text = main_help(capsys)
    assert "smooth-or-featured_smooth_rho_mean is P(smooth)" in " ".join(help_text.split())
    assert "--allow-outside-root" in help_text


def main_help(capsys) -> str:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    return capsys.readouterr().out


def test_the_shipped_real_model_by_name_applies_its_cards_crop(tmp_path):
    source = paths.RAW_DIR / "sdss_gz1_sample"
    catalog = pd.read_csv(source / "catalog.csv", dtype=str).head(5)
    catalog.to_csv(tmp_path / "c.csv", index=False)
    out = predict.predict_catalog("real", tmp_path / "c.csv", tmp_path / "p.parquet",
                                  images_root=source, n_samples=4, progress=False)  # fmt: skip
    meta = predict.read_metadata(out)
    assert meta["model_file"] == str(paths.SHIPPED_MODELS["real"]) and meta["crop_fraction"] == 0.4
    table = pd.read_parquet(out)
    assert len(table) == 5 and table["smooth-or-featured_smooth_rho_mean"].between(0, 1).all()


def test_a_tree_model_writes_answer_fractions_asked_shares_and_bald(setup, tmp_path):
    from zoolib.votes import trees

    tree = trees.GZ2.subset("two", ["smooth-or-featured", "disk-edge-on"])
    model_file = tmp_path / "tree.keras"
    build_bayesian_cnn(16, 1, tree.n_answers, filters=(4,) * 6, dense_units=8,
                       seed=0).save(model_file)  # fmt: skip
    cards.ModelCard(tree.questions, 16, 1, tree=tree.to_mapping()).write(model_file)
    out = predict.predict_catalog(model_file, setup["catalog"], tmp_path / "p.parquet",
                                  n_samples=T, block_size=BLOCK, progress=False)  # fmt: skip
    table = pd.read_parquet(out)
    assert list(table.columns[2:]) == predict.tree_columns(tree)
    fractions = [f"smooth-or-featured_{a}_fraction_mean" for a in tree.nodes[0].answers]
    np.testing.assert_allclose(table[fractions].sum(axis=1), 1.0, atol=1e-9)
    low, mean, high = (table[f"disk-edge-on_yes_fraction_{s}"] for s in ("q05", "mean", "q95"))
    assert (low <= mean).all() and (mean <= high).all() and (high > low).any()
    featured = table["smooth-or-featured_featured-or-disk_fraction_mean"]
    np.testing.assert_allclose(table["disk-edge-on_asked"], featured)
    assert (table["smooth-or-featured_asked"] == 1).all() and (table["disk-edge-on_mi"] >= 0).all()
    meta = predict.read_metadata(out)
    assert meta["questions"] == tree.questions and meta["answers"] == tree.to_mapping()


def test_tree_summaries_estimate_bald_where_vote_vectors_are_too_many():
    from zoolib.votes import trees

    tree = trees.GZ2.subset("odd", ["smooth-or-featured", "anything-odd", "odd-feature"])
    logits = np.random.default_rng(0).normal(0, 1, (3, tree.n_answers, 6))
    stats = predict.summarize_tree(logits, tree, expected_votes=40, seed=0)  # 7 answers: MC
    assert set(stats) == set(predict.tree_columns(tree))
    assert np.isfinite(stats["odd-feature_mi"]).all() and (stats["odd-feature_mi"] > 0).all()
    odd_yes = stats["anything-odd_yes_fraction_mean"]
    np.testing.assert_allclose(stats["odd-feature_asked"], stats["anything-odd_asked"] * odd_yes)


def test_representations_are_trunk_features_beside_unchanged_predictions(setup, unsharded,
                                                                          tmp_path):  # fmt: skip
    out = tmp_path / "reps_{i}of{n}.parquet"
    argv = ["predict", "--model", str(setup["model"]), "--catalog", str(setup["catalog"]),
            "--samples", str(T), "--block-size", str(BLOCK), "--out", str(out), "--no-progress",
            "--representations"]  # fmt: skip
    assert main(argv) == 0
    written = tmp_path / "reps_0of1.parquet"
    got = pd.read_parquet(written)
    features = [f"feature_{f:03d}" for f in range(8)]  # the tiny model's 8 dense units
    assert list(got.columns) == list(unsharded.columns) + features
    pd.testing.assert_frame_equal(got[unsharded.columns], unsharded)  # same dropout draws
    catalog = pd.read_csv(setup["catalog"], dtype={"id_str": str})
    pixels, _ = images.load_images([setup["root"] / f for f in catalog["file_loc"]], 16, 1)
    want = posteriors.trunk_features(load_model(setup["model"]), pixels)
    np.testing.assert_allclose(got[features].to_numpy(), want, rtol=1e-5, atol=1e-6)
    assert predict.read_metadata(written)["representations"] == 8
    ids, feats = similarity.read_representations(written)
    assert ids.tolist() == catalog["id_str"].tolist() and feats.shape == (N_GALAXIES, 8)
    with pytest.raises(ValueError, match="no feature_"):
        similarity.read_representations(setup["root"] / "all.parquet")


def test_representations_of_a_model_without_a_trunk_are_refused(setup, tmp_path):
    import keras

    flat = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(3)])  # fmt: skip
    flat.save(tmp_path / "flat.keras")
    with pytest.raises(ValueError, match="no trunk to read"):
        predict.predict_catalog(tmp_path / "flat.keras", setup["catalog"],
                                tmp_path / "x.parquet", representations=True,
                                progress=False)  # fmt: skip
    assert not (tmp_path / "x.parquet").exists()
    assert not predict.blocks_folder(tmp_path / "x.parquet").exists()


def test_fits_images_for_a_model_that_learned_from_jpegs_are_warned_about():
    """The real model's card says it learned from JPEGs: FITS cutouts (zoo's arcsinh stretch)
    get a warning naming the mismatch and that FITS accuracy is unmeasured; JPEGs, or a model
    whose card does not say, get none. The card's crop note names a value a user can type."""
    from zoolib.cnn import cards

    card = cards.ModelCard.read_beside(paths.SHIPPED_MODELS["real"])
    text = predict.format_warning(card, ["a.fits", "b.jpg", "c.FITS.gz"])
    assert text.startswith("2 of 3 images are FITS, but the model learned from jpeg images")
    assert "unmeasured" in text
    assert predict.format_warning(card, ["a.jpg", "b.png"]) is None
    assert predict.format_warning(None, ["a.fits"]) is None
    _, _, noted = predict.image_settings(card, None)
    assert noted[0].endswith("pass --crop-fraction 0.5") and "crop_by_survey" not in noted[0]
