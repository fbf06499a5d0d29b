"""The maps in zoolib's ``__init__`` files are the import graph. zoolib/__init__.py lists the
foundations, the folders bottom-up (their floors) and the top-level uses; each folder's
``__init__`` lists its modules bottom-up. A module imports only the foundations, folders below
its own, and modules listed above it in its own folder (or, at the top level, uses above it): no
cycles, nothing imports upward, and a failure names the offending import."""

import ast
import importlib
from pathlib import Path

import zoolib

PACKAGE = Path(zoolib.__file__).parent


def listed(package_doc: str, prefix: str) -> list[str]:
    """Dotted names ``prefix.x`` of a docstring's list entries ``* :mod:`prefix.x```, in order."""
    return [
        ln.split(":mod:`")[1].split("`")[0]
        for ln in (package_doc or "").splitlines()
        if ln.strip().startswith(f"* :mod:`{prefix}.")
    ]


def layers(package: Path = PACKAGE, name: str = "zoolib") -> dict[str, tuple[int, int]]:
    """Each module's (floor, position): foundations floor 0, folder i floor i, uses last; the
    position orders modules within a floor."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    top = listed(doc.split("Folders")[0], name)
    folders = listed(doc.split("Folders")[1].split("Uses")[0], name)
    uses = listed(doc.split("Uses")[1], name)
    order = {m: (0, i) for i, m in enumerate(top)}
    for floor, folder in enumerate(folders, 1):
        sub = package / folder.split(".")[-1] / "__init__.py"
        mods = listed(ast.get_docstring(ast.parse(sub.read_text())) or "", folder)
        order |= {m: (floor, i) for i, m in enumerate(mods)}
        order[folder] = (floor, -1)  # the folder itself: its __init__ imports nothing
    order |= {m: (len(folders) + 1, i) for i, m in enumerate(uses)}
    return order


def modules(package: Path = PACKAGE, name: str = "zoolib") -> dict[str, Path]:
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        dotted = ".".join((name, *parts))
        found[dotted.removesuffix(".__init__")] = path
    return found


def zoolib_imports(path: Path, name: str = "zoolib") -> set[str]:
    """The zoolib modules (or folders) a file imports, as dotted names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == name:
            for alias in node.names:  # ``from zoolib.cnn import losses`` or ``import X``
                found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == name}
    return found


def target(dotted: str, known: dict) -> str | None:
    """The longest listed module a dotted import name falls in (``zoolib.cnn.losses.binomial_loss``
    is in ``zoolib.cnn.losses``); None for the package itself."""
    while dotted and dotted not in known:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def upward_imports(package: Path = PACKAGE, name: str = "zoolib") -> list[str]:
    order = layers(package, name)
    bad = []
    for mod, path in sorted(modules(package, name).items()):
        if mod == name or mod not in order:
            continue
        for imported in sorted(zoolib_imports(path, name)):
            dest = target(imported, order)
            if dest is None or dest == mod:
                continue
            (floor, pos), (dfloor, dpos) = order[mod], order[dest]
            if dfloor > floor or (dfloor == floor and dpos >= pos):  # one folder per floor
                bad.append(f"{path.relative_to(package.parent)} imports {imported} "
                           f"(floor {dfloor}, from floor {floor})")
    return bad


def folder_cycles(package: Path = PACKAGE, name: str = "zoolib") -> list[str]:
    """Pairs of folders that import each other, directly or through other folders."""
    folders = {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    edges = {f: set() for f in folders}
    for mod, path in modules(package, name).items():
        parts = mod.split(".")
        if len(parts) > 2 and parts[1] in folders:
            for imported in zoolib_imports(path, name):
                other = imported.split(".")
                if len(other) > 1 and other[1] in folders and other[1] != parts[1]:
                    edges[parts[1]].add(other[1])
    reach = {f: set(e) for f, e in edges.items()}
    for _ in folders:  # transitive closure
        reach = {f: r | {x for g in r for x in reach[g]} for f, r in reach.items()}
    return sorted(f"{a} <-> {b}" for a in folders for b in reach[a] if a < b and a in reach[b])


def test_every_module_is_in_a_map_once():
    order = layers()
    mods = set(modules()) - {"zoolib"}
    assert sorted(mods - set(order)) == [], "modules missing from the __init__ maps"
    assert sorted(set(order) - mods) == [], "maps list modules that do not exist"


def test_modules_import_only_their_folder_and_folders_below():
    assert upward_imports() == []


def test_no_folder_imports_a_folder_that_imports_it_back():
    assert folder_cycles() == []


def test_layout_limits():
    """At most six modules at the top level besides __init__ and __main__; five or more folders."""
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    folders = [p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()]
    assert len(top) <= 6 and len(folders) >= 5, (sorted(top), folders)


def test_folders_import_without_tensorflow():
    """Importing zoolib or any folder starts nothing heavy: the maps are docstrings only."""
    import subprocess
    import sys

    folders = [f"zoolib.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()]
    code = f"import sys; import {', '.join(folders)}; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    for folder in folders:
        assert importlib.import_module(folder).__doc__


def make_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root / "pkg"


TOY = {
    "pkg/__init__.py": '"""Found\n    * :mod:`pkg.paths`\nFolders\n    * :mod:`pkg.low`\n'
                       '    * :mod:`pkg.high`\nUses\n    * :mod:`pkg.main`\n"""\n',
    "pkg/paths.py": "",
    "pkg/low/__init__.py": '"""\n    * :mod:`pkg.low.a`\n    * :mod:`pkg.low.b`\n"""\n',
    "pkg/low/a.py": "from pkg import paths\n",
    "pkg/low/b.py": "from pkg.low import a\n",
    "pkg/high/__init__.py": '"""\n    * :mod:`pkg.high.c`\n"""\n',
    "pkg/high/c.py": "from pkg.low.b import thing\n",
    "pkg/main.py": "from pkg.high import c\n",
}


def test_the_layering_check_passes_a_good_package_and_names_each_bad_import(tmp_path):
    good = make_package(tmp_path / "good", TOY)
    assert upward_imports(good, "pkg") == [] and folder_cycles(good, "pkg") == []
    bad = make_package(tmp_path / "bad", {
        **TOY,
        "pkg/low/a.py": "from pkg.low import b\nfrom pkg.high import c\n",  # sideways and up
        "pkg/paths.py": "import pkg.main\n",  # a foundation importing a use
    })
    assert upward_imports(bad, "pkg") == [
        "pkg/low/a.py imports pkg.high.c (floor 2, from floor 1)",
        "pkg/low/a.py imports pkg.low.b (floor 1, from floor 1)",
        "pkg/paths.py imports pkg.main (floor 3, from floor 0)",
    ]
    assert folder_cycles(bad, "pkg") == ["high <-> low"]


def private_uses(path: Path) -> list[str]:
    """``from zoolib.x import _y`` and ``x._y`` for a zoolib module ``x`` imported by name."""
    tree = ast.parse(path.read_text())
    known = set(modules())
    aliases = {
        a.asname or a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoolib")
        for a in node.names
        if f"{node.module}.{a.name}" in known
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoolib"):
            found += [f"{node.module}.{a.name}" for a in node.names if private(a.name)]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in aliases and private(node.attr):
                found.append(f"{node.value.id}.{node.attr}")
    return [f"{path.name}: {f}" for f in found]


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_names_used_across_modules():
    roots = [PACKAGE, PACKAGE.parent / "tests", PACKAGE.parent / "benchmarks"]
    found = [use for root in roots for path in root.rglob("*.py") for use in private_uses(path)]
    assert found == []


def test_the_private_name_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from zoolib.data import processed\nfrom zoolib.files import _jsonable\n"
                   "processed._x()\n")
    assert private_uses(bad) == ["bad.py: zoolib.files._jsonable", "bad.py: processed._x"]
