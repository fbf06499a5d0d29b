"""Run the numbered notebooks headlessly with papermill and turn them into HTML reports.

``python -m zoolib run --params default`` executes ``notebooks/NN_*.ipynb`` in order with the
parameters of ``notebooks/params/default.yaml`` (one mapping per notebook stem), writing
``reports/executed/*.ipynb``, ``reports/html/*.html`` and ``reports/index.html``.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
import time
from pathlib import Path

import yaml

from zoolib import paths

NOTEBOOK_PATTERN = re.compile(r"^\d\d_.+\.ipynb$")


class RunError(RuntimeError):
    """A notebook failed or was given parameters it does not declare."""


def numbered_notebooks(notebooks_dir: Path | None = None) -> list[Path]:
    """The notebooks named ``NN_*.ipynb`` in ``notebooks_dir``, in order."""
    folder = Path(notebooks_dir or paths.NOTEBOOKS_DIR)
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))


def load_params(params: str, params_dir: Path | None = None) -> dict[str, dict]:
    """Parameter sets by notebook stem, from a named set (ci, default, full) or a YAML file."""
    path = Path(params)
    if not path.suffix:
        path = Path(params_dir or paths.PARAMS_DIR) / f"{params}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"parameter file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of notebook name -> parameter mapping")
    return data


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def run_notebook(notebook: Path, parameters: dict, reports_dir: Path) -> Path:
    """Execute one notebook with papermill and convert it to HTML; return the HTML path."""
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    declared = pm.inspect_notebook(str(notebook))
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise RunError(
            f"{notebook.name}: unknown parameter(s) {unknown}; it declares {sorted(declared)}"
        )
    executed = reports_dir / "executed" / notebook.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            cwd=str(notebook.parent),
            progress_bar=False,
        )
    except pm.PapermillExecutionError as err:
        raise RunError(
            f"{notebook.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
            f"the partly executed notebook is kept at {executed}"
        ) from err
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    html_path = reports_dir / "html" / notebook.with_suffix(".html").name
    _atomic_write(html_path, body)
    return html_path


def run(
    params: str = "default",
    only: list[str] | None = None,
    notebooks_dir: Path | None = None,
    reports_dir: Path | None = None,
) -> list[Path]:
    """Run the numbered notebooks (or those whose names start with an entry of ``only``)."""
    reports_dir = Path(reports_dir or paths.REPORTS_DIR)
    sets = load_params(params, Path(notebooks_dir) / "params" if notebooks_dir else None)
    available = numbered_notebooks(notebooks_dir)
    notebooks = available
    if only:
        notebooks = [nb for nb in available if any(nb.name.startswith(o) for o in only)]
        if not notebooks:
            raise RunError(
                f"--only {' '.join(only)} matches no notebook; have {[nb.name for nb in available]}"
            )
    stray = sorted(set(sets) - {nb.stem for nb in available})
    if stray:
        raise RunError(f"parameter set {params!r} names notebooks that do not exist: {stray}")
    done = []
    for nb in notebooks:
        start = time.perf_counter()
        print(f"running {nb.name} ...", flush=True)
        done.append(run_notebook(nb, sets.get(nb.stem, {}), reports_dir))
        print(f"  {nb.name} done in {time.perf_counter() - start:.1f} s", flush=True)
    if not notebooks:
        print(f"no numbered notebooks in {notebooks_dir or paths.NOTEBOOKS_DIR} yet", flush=True)
    links = "\n".join(
        f'<li><a href="html/{html.escape(p.name)}">{html.escape(p.stem)}</a></li>' for p in done
    )
    _atomic_write(
        reports_dir / "index.html",
        f"<!doctype html><title>zoo reports</title><h1>zoo reports ({html.escape(params)})</h1>"
        f"<ul>{links or '<li>no notebooks were run</li>'}</ul>\n",
    )
    return done
