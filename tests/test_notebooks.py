"""House rules for the committed notebooks: stripped, one documented parameters cell."""

import ast

import nbformat
import pytest

from zoolib import paths, runner

NOTEBOOKS = runner.numbered_notebooks(paths.NOTEBOOKS_DIR)


def test_there_are_notebooks():
    assert [nb.name[:2] for nb in NOTEBOOKS][:1] == ["01"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit without outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    for line in tagged[0].source.splitlines():
        if line.strip():
            assert "  # " in line, f"parameter without a trailing comment: {line!r}"
            node = ast.parse(line.split("  # ")[0]).body[0]
            assert isinstance(node, ast.AnnAssign | ast.Assign)
            ast.literal_eval(node.value)  # plain values only; derived values go in the next cell
    assert nb.cells[0].cell_type == "markdown" and "Overview" in nb.cells[0].source


@pytest.mark.parametrize("params", runner.named_sets())
def test_parameter_sets_name_only_declared_parameters(params):
    import papermill as pm

    sets = runner.load_params(params)
    for stem, values in sets.items():
        declared = pm.inspect_notebook(str(paths.NOTEBOOKS_DIR / f"{stem}.ipynb"))
        assert set(values) <= set(declared), f"{params}.yaml: {stem} has unknown parameters"
        for name in values:
            assert declared[name]["help"], f"{stem}.{name} has no comment"


def test_the_main_job_is_the_notebooks_as_they_are():
    """One source of defaults: ``make reports`` (params default) overrides no parameter cell."""
    assert runner.load_params("default") == {}
    assert not (paths.PARAMS_DIR / "default.yaml").exists()
