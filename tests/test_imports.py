"""The package map in zoolib/__init__.py is the import graph: every module is listed, and each
imports only modules listed above it (no cycles, nothing imports upward)."""

import ast
from pathlib import Path

import zoolib

PACKAGE = Path(zoolib.__file__).parent


def _map() -> list[str]:
    lines = (zoolib.__doc__ or "").splitlines()
    return [ln.split(":mod:`zoolib.")[1].split("`")[0] for ln in lines if ":mod:`zoolib." in ln]


def _zoolib_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "zoolib":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoolib."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("zoolib.")}
    return found


def test_every_module_is_in_the_map_once():
    listed = _map()
    assert len(listed) == len(set(listed))
    assert set(listed) == {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}


def test_modules_import_only_modules_above_them():
    order = {m: i for i, m in enumerate(_map())}
    upward = [
        f"{path.stem} imports {name}"
        for path in PACKAGE.glob("*.py")
        if path.stem in order
        for name in _zoolib_imports(path)
        if name in order and order[name] >= order[path.stem]
    ]
    assert upward == []


def test_no_private_names_imported_across_modules():
    private = [
        f"{path.stem}: {node.module}.{a.name}"
        for path in PACKAGE.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoolib")
        for a in node.names
        if a.name.startswith("_") and a.name != "__version__"
    ]
    assert private == []
