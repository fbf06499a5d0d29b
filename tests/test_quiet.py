"""TensorFlow imported without its C++ start-up lines: what a notebook's first cell does, so that
JupyterLab and papermill show no "Could not find cuda drivers" or absl lines outside the
runner (which filters its kernels' output the same way)."""

import os
import subprocess
import sys

import nbformat
import pytest

from zoolib import paths
from zoolib.reports import runner

NOISE = ("absl::InitializeLog", "Could not find cuda drivers", "failed call to cuInit")


def stderr_of(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


@pytest.mark.skipif(os.path.exists("/dev/nvidiactl"), reason="a GPU machine logs other lines")
def test_quiet_import_keeps_the_start_up_lines_out_and_everything_else_in():
    plain = stderr_of("import tensorflow as tf; tf.config.list_physical_devices()")
    assert any(n in plain for n in NOISE), plain  # the premise: a plain import is noisy here
    quiet = stderr_of(
        "import sys; from zoolib import quiet; assert quiet.tensorflow() is None;"
        "import tensorflow as tf; import keras; tf.constant(1.0) + 1; quiet.tensorflow();"
        "print('kept: a line of the notebook', file=sys.stderr)"
    )
    assert not any(n in quiet for n in NOISE), quiet
    assert "kept: a line of the notebook" in quiet


NOTEBOOKS = runner.numbered_notebooks(paths.NOTEBOOKS_DIR)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_imports_tensorflow_quietly_first(path):
    code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert "quiet.tensorflow()" in code[0] and "import tensorflow" not in code[0]


@pytest.mark.skipif(os.path.exists("/dev/nvidiactl"), reason="a GPU machine logs other lines")
def test_the_command_line_predicts_without_the_start_up_lines(tmp_path):
    """python -m zoolib predict on the shipped cutouts: its own messages, not TensorFlow's."""
    catalog = paths.RAW_DIR / "sdss_gz1_sample" / "catalog.csv"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(
        [sys.executable, "-m", "zoolib", "predict", "--model", "real", "--catalog", str(catalog),
         "--out", str(tmp_path / "p.parquet"), "--samples", "2", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "60 galaxies" in proc.stdout
    assert not any(n in proc.stderr + proc.stdout for n in NOISE), proc.stderr
