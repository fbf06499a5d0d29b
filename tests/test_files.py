"""Atomic writes that respect the user's umask (zoolib.files and the writers that use it)."""

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from zoolib import files, paths
from zoolib.cnn import evaluation
from zoolib.data import processed
from zoolib.universe import synthetic


@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)

    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    written = [
        files.write_json(tmp_path / "a.json", {"x": np.float64(1.5), "p": tmp_path}),
        files.write_text(tmp_path / "b.txt", "hello"),
        evaluation.write_metrics("m", {"n": np.int64(3)}, tmp_path / "metrics"),
    ]
    images, catalog = synthetic.simulate(20, size=16, seed=1)
    folder = processed.write_processed("tiny", images, catalog, "synthetic", root=tmp_path / "proc")
    written += [folder / f for f in ("images.npy", "catalog.parquet", "manifest.json")]
    for path in written:
        assert mode(path) == file_mode, path
    assert mode(folder) == dir_mode and mode(tmp_path / "metrics") == dir_mode
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1.5, "p": str(tmp_path)}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = files.write_text(tmp_path / "report.html", "old")

    def half_then_fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        files.write_atomic(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_sha256_matches_hashlib(tmp_path):
    import hashlib

    blob = os.urandom(5 * 2**20 + 17)  # more than one 4 MiB block
    (tmp_path / "blob").write_bytes(blob)
    assert files.sha256(tmp_path / "blob") == hashlib.sha256(blob).hexdigest()


def test_save_model_is_atomic_and_keeps_the_keras_suffix(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = files.save_model(model, tmp_path / "m.keras")
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["m.keras"]
    with pytest.raises(ValueError):  # Keras refuses other suffixes: nothing is left behind
        files.save_model(model, tmp_path / "m.h5x")
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]


def test_leftovers_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "dataset"

    def leftover(pid, origin=None, of=target, keep_suffix=False):
        """A temporary name as a writer with process ``pid`` (of another host: ``origin``)."""
        name = files.temporary_sibling(of, keep_suffix=keep_suffix).name
        prefix, own, _, rest = name.rsplit("-", 3)
        return tmp_path / f"{prefix}-{origin or own}-{pid}-{rest}"

    stale = leftover(dead.pid)
    stale.mkdir()
    (stale / "images.npy").write_bytes(b"x" * 1000)
    stale_file = leftover(dead.pid)
    stale_file.write_text("half")
    stale_model = leftover(dead.pid, of=tmp_path / "model.keras", keep_suffix=True)
    stale_model.write_text("half a model")  # another target in the same folder: swept too
    running = leftover(os.getpid())  # a live writer: kept
    running.mkdir()
    elsewhere = leftover(dead.pid, origin="0123456789")  # another machine: kept
    elsewhere.mkdir()
    unrelated = tmp_path / ".dataset.notes-mine"  # not a temporary's name: kept
    unrelated.write_text("keep")
    files.write_text(target, "done")
    assert target.read_text() == "done"
    assert not stale.exists() and not stale_file.exists() and not stale_model.exists()
    assert running.exists() and elsewhere.exists() and unrelated.exists()


def test_the_outputs_root_moves_what_runs_write_and_not_what_ships(tmp_path):
    import subprocess
    import sys

    code = ("from zoolib import paths; print(paths.PROCESSED_DIR, paths.MODELS_DIR, "
            "paths.RUNS_DIR, paths.REPORTS_DIR, paths.RAW_DIR, paths.NOTEBOOKS_DIR, sep='\\n')")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    env["ZOO_OUTPUT_ROOT"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    processed, models, runs, reports, raw, notebooks = map(Path, out)
    for written in (processed, models, runs, reports):
        assert written.is_relative_to(tmp_path)
    for shipped in (raw, notebooks):
        assert shipped.is_relative_to(paths.PROJECT_ROOT) and shipped.is_dir()
