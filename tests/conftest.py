"""Shared test set-up: quiet TensorFlow, fixed seeds, no GPU needed."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20200101)


# The longest modules, longest first (seconds on 2 cores from a fresh clone, 2026-12-05): the
# notebook jobs (113, 112), distributed training (104), training (80), the toy CNN (65), the
# paper's regime resumed (60), tree models (43).
FIRST = ("test_main_job.py", "test_tree_job.py", "test_distributed.py", "test_training.py",
         "test_models.py", "test_active.py", "test_tree_model.py")  # fmt: skip


def pytest_collection_modifyitems(config, items):
    """The longest modules first: pytest-xdist's loadscope hands out modules in this order, so
    the long ones start early on separate workers and the short ones fill in at the end
    (longest-first scheduling: no worker is left with a long module while the other idles)."""
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable for the rest
