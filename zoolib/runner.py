"""Run the numbered notebooks headlessly with papermill and turn them into HTML reports.

``python -m zoolib run --params default`` executes ``notebooks/NN_*.ipynb`` in order with their
own parameter cells (the main job: exactly what a notebook run top to bottom in JupyterLab
does), writing ``reports/executed/*.ipynb``, ``reports/html/*.html`` and ``reports/index.html``.
Other sets override some parameters: ``notebooks/params/<name>.yaml`` (``ci``, ``full``) or any
YAML file, one mapping per notebook stem.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from pathlib import Path

import yaml

from zoolib import files, paths

NOTEBOOK_PATTERN = re.compile(r"^\d\d_.+\.ipynb$")
DEFAULT_PARAMS = "default"  # the notebooks' own parameter cells: no file, nothing overridden


class RunError(RuntimeError):
    """A notebook failed or was given parameters it does not declare."""


def numbered_notebooks(notebooks_dir: Path | None = None) -> list[Path]:
    """The notebooks named ``NN_*.ipynb`` in ``notebooks_dir``, in order."""
    folder = Path(notebooks_dir or paths.NOTEBOOKS_DIR)
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))


def load_params(params: str, params_dir: Path | None = None) -> dict[str, dict]:
    """Parameter overrides by notebook stem: a named set (ci, full), a YAML file, or ``default``.

    ``default`` overrides nothing: the notebooks' parameter cells are the main job's defaults,
    the one place they are written. A ``default.yaml`` beside the other sets is refused, so that
    a second, diverging copy cannot creep back.
    """
    folder = Path(params_dir or paths.PARAMS_DIR)
    if (folder / f"{DEFAULT_PARAMS}.yaml").exists():
        raise ValueError(
            f"{folder / f'{DEFAULT_PARAMS}.yaml'}: the defaults are the notebooks' parameter"
            " cells; change them there and delete this file"
        )
    if params == DEFAULT_PARAMS:
        return {}
    path = Path(params)
    if not path.suffix:
        path = folder / f"{params}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"parameter file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of notebook name -> parameter mapping")
    return data


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
    files.write_text(html_path, body)
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
    saved_env = {
        k: os.environ.get(k) for k in ("ZOO_REPORTS_DIR", "ZOO_HEADLESS", "TF_CPP_MIN_LOG_LEVEL")
    }
    os.environ["ZOO_REPORTS_DIR"] = str(reports_dir.resolve())  # notebooks write metrics here
    os.environ["ZOO_HEADLESS"] = "1"  # widgets draw static figures
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ log out of reports
    try:
        for nb in notebooks:
            start = time.perf_counter()
            print(f"running {nb.name} ...", flush=True)
            done.append(run_notebook(nb, sets.get(nb.stem, {}), reports_dir))
            print(f"  {nb.name} done in {time.perf_counter() - start:.1f} s", flush=True)
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    write_index(reports_dir, params, done)
    return done


def _summary_rows(metrics_file: Path) -> str:
    """Table rows of a metrics file's flat ``summary`` mapping, if it has one."""
    if not metrics_file.is_file():
        return ""
    summary = json.loads(metrics_file.read_text()).get("summary", {})
    return "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{v:.4g}</td></tr>"
        if isinstance(v, float)
        else f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in summary.items()
    )


def write_index(reports_dir: Path, params: str, done: list[Path]) -> Path:
    """``reports/index.html``: links to every report with the key metrics of each notebook."""
    sections = []
    for page in done:
        rows = _summary_rows(reports_dir / "metrics" / f"{page.stem}.json")
        table = f"<table>{rows}</table>" if rows else ""
        sections.append(
            f'<h2><a href="html/{html.escape(page.name)}">{html.escape(page.stem)}</a></h2>{table}'
        )
    body = "\n".join(sections) or "<p>no notebooks were run</p>"
    style = "body{font-family:sans-serif;max-width:60em;margin:auto}td{padding:2px 12px}"
    target = reports_dir / "index.html"
    files.write_text(
        target,
        f"<!doctype html><meta charset=utf-8><title>zoo reports</title><style>{style}</style>"
        f"<h1>zoo reports <small>(parameters: {html.escape(params)})</small></h1>{body}\n",
    )
    return target
