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


def _private_uses(path: Path) -> list[str]:
    """``from zoolib.x import _y`` and ``x._y`` for a zoolib module ``x`` imported by name."""
    tree = ast.parse(path.read_text())
    modules = set(_map())
    aliases = {
        a.asname or a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "zoolib"
        for a in node.names
        if a.name in modules
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoolib"):
            found += [f"{node.module}.{a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in aliases and _private(node.attr):
                found.append(f"{node.value.id}.{node.attr}")
    return [f"{path.name}: {f}" for f in found]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_names_used_across_modules():
    roots = [PACKAGE, PACKAGE.parent / "tests", PACKAGE.parent / "benchmarks"]
    private = [use for root in roots for path in root.glob("*.py") for use in _private_uses(path)]
    assert private == []


def test_the_private_name_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from zoolib import data\nfrom zoolib.files import _jsonable\ndata._x()\n")
    assert _private_uses(bad) == ["bad.py: zoolib.files._jsonable", "bad.py: data._x"]
