import nbformat
import pytest
import yaml

from zoolib import runner


def make_notebook(path, params_source, body_source):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(params_source)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# demo"),
        params,
        nbformat.v4.new_code_cell(body_source),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path):
    nbs = tmp_path / "notebooks"
    (nbs / "params").mkdir(parents=True)
    make_notebook(nbs / "01_first.ipynb", "x = 1  # a number", "print('x is', x)")
    make_notebook(nbs / "02_second.ipynb", "y = 2  # another", "assert y == 2, 'y must be 2'")
    make_notebook(nbs / "scratch.ipynb", "z = 0  # not numbered", "raise SystemExit")
    (nbs / "params" / "ci.yaml").write_text(yaml.safe_dump({"01_first": {"x": 41}}))
    return tmp_path


def test_runs_numbered_notebooks_with_parameters(project):
    done = runner.run("ci", notebooks_dir=project / "notebooks", reports_dir=project / "reports")
    assert [p.name for p in done] == ["01_first.html", "02_second.html"]
    executed = nbformat.read(project / "reports" / "executed" / "01_first.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "x is 41" in outputs
    index = (project / "reports" / "index.html").read_text()
    assert "html/01_first.html" in index and "scratch" not in index


def test_unknown_parameter_is_an_error(project):
    (project / "notebooks" / "params" / "ci.yaml").write_text(
        yaml.safe_dump({"01_first": {"x": 1, "typo": 3}})
    )
    with pytest.raises(runner.RunError, match=r"01_first.ipynb: unknown parameter\(s\) \['typo'\]"):
        runner.run("ci", notebooks_dir=project / "notebooks", reports_dir=project / "reports")


def test_failing_notebook_stops_the_run_and_is_kept(project):
    (project / "notebooks" / "params" / "ci.yaml").write_text(
        yaml.safe_dump({"02_second": {"y": 3}})
    )
    with pytest.raises(runner.RunError, match="02_second.ipynb failed in cell .*y must be 2"):
        runner.run("ci", notebooks_dir=project / "notebooks", reports_dir=project / "reports")
    assert (project / "reports" / "executed" / "02_second.ipynb").exists()
    assert not (project / "reports" / "html" / "02_second.html").exists()


def test_missing_parameter_set(project):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        runner.run("nope", notebooks_dir=project / "notebooks", reports_dir=project / "reports")


def test_only_that_matches_nothing_is_an_error(project):
    with pytest.raises(runner.RunError, match="--only 5 matches no notebook"):
        runner.run("ci", only=["5"], notebooks_dir=project / "notebooks", reports_dir=project / "r")
    assert not (project / "r" / "index.html").exists()


def test_default_runs_the_notebooks_own_parameter_cells(project):
    runner.run("default", only=["01"], notebooks_dir=project / "notebooks",
               reports_dir=project / "reports")  # fmt: skip
    executed = nbformat.read(project / "reports" / "executed" / "01_first.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "x is 1" in outputs  # the cell's own value, nothing injected


def test_a_second_copy_of_the_defaults_is_refused(project):
    (project / "notebooks" / "params" / "default.yaml").write_text(
        yaml.safe_dump({"01_first": {"x": 5}})
    )
    with pytest.raises(ValueError, match="default.yaml: the defaults are the notebooks' parameter"):
        runner.run("ci", notebooks_dir=project / "notebooks", reports_dir=project / "reports")
