"""Helpers of the tests that run notebooks through the runner (test_main_job, test_tree_job)."""

import contextlib
import json
import os

OUTPUTS = ("data/processed", "data/runs", "data/representations", "data/campaigns", "models",
           "reports")  # what runs write, in a checkout


def written(folder):
    """{path: mtime} of every file under the checkout's output folders."""
    return {p: p.stat().st_mtime_ns for d in OUTPUTS for p in (folder / d).rglob("*")
            if p.is_file()}  # fmt: skip


@contextlib.contextmanager
def outputs_root(root):
    """ZOO_OUTPUT_ROOT set to ``root`` inside the block: the kernels write data, models and
    reports there."""
    old = os.environ.get("ZOO_OUTPUT_ROOT")
    os.environ["ZOO_OUTPUT_ROOT"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ZOO_OUTPUT_ROOT")
        else:
            os.environ["ZOO_OUTPUT_ROOT"] = old


def metrics(root, stem, reports="reports"):
    """A notebook's metrics JSON from a run's reports folder."""
    return json.loads((root / reports / "metrics" / f"{stem}.json").read_text())
