"""House rules for the committed notebooks: stripped, one documented parameters cell."""

import ast

import nbformat
import pytest

from zoolib import paths
from zoolib.reports import runner

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


MAX_CELL_LINES = 25  # longer logic belongs in a tested zoolib function


def _logic_lines(source: str) -> int:
    """Lines of a cell outside its import statements (a long import list is no logic)."""
    imports = {line for node in ast.parse(source).body if isinstance(node, ast.Import |
               ast.ImportFrom) for line in range(node.lineno, node.end_lineno + 1)}  # fmt: skip
    return len(source.splitlines()) - len(imports)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_cells_are_short_and_it_ends_with_exercises(path):
    """For a class: no code cell over 25 lines (not counting import statements; the
    parameters cell aside, which holds plain values), and an Exercises section of at least
    three numbered items, each saying what to change or compute."""
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        lines = _logic_lines(cell.source)
        assert lines <= MAX_CELL_LINES, f"{path.name} cell {i}: {lines} lines; move it to zoolib"
    exercises = [c.source for c in nb.cells
                 if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    assert len(exercises) == 1, f"{path.name} has no '## Exercises' section"
    items = [line for line in exercises[0].splitlines() if line[:1].isdigit() and line[1:2] == "."]
    assert len(items) >= 3, f"{path.name}: {len(items)} exercises"


def test_the_front_readme_is_short_and_starts_with_the_smoke_run():
    text = (paths.PROJECT_ROOT / "README.md").read_text()
    assert len(text.split()) < 1200
    assert text.index("make reports PARAMS=ci") < text.index("make reports   #")
    assert "## Your own catalogue" in text and "## Your own label" in text
