"""Shared test set-up: quiet TensorFlow, fixed seeds, no GPU needed."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20200101)


FIRST = ("test_main_job.py", "test_tree_job.py")  # the longest module fixtures (notebook runs)


def pytest_collection_modifyitems(config, items):
    """The notebook jobs first: pytest-xdist's loadscope hands out modules in this order, so
    the two longest start at once on separate workers while the rest fill in beside them."""
    items.sort(key=lambda item: item.path.name not in FIRST)  # stable: the rest keep their order
