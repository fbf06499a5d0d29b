"""Atomic file writes, JSON and hashes: the one home for how zoolib puts files on disk.

Every writer here writes to a temporary name beside the target
(``.<name>.<kind>-<origin>-<pid>-<random>``, the origin a hash of the host name and the PID
namespace) and renames it into place, so a killed job leaves
either the old file or the new one, never half of one, and an error removes the temporary. A
killed job cannot remove its temporary, so the first write into a folder removes the temporaries
left there by processes of this machine and PID namespace that no longer run
(:func:`remove_stale_temporaries`); those of running processes, or of other machines sharing
the folder, are left alone. Files and folders are created with plain ``open`` and
``os.mkdir``, so they get the user's umask (``tempfile.mkstemp``/``mkdtemp`` would make them
private, mode 0600/0700, and a colleague could not read a shared project's reports).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _origin() -> str:
    """Ten hex digits naming this machine and PID namespace (containers sharing a host name
    and a folder have different PID namespaces, so one never judges the other's processes)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha1(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:10]


def temporary_sibling(path: Path, kind: str = "tmp", keep_suffix: bool = False) -> Path:
    """A fresh, unused name beside ``path`` (hidden, naming this host and process, with a
    random part); ``keep_suffix`` ends it with ``path``'s suffix too, for writers that insist
    on one (Keras: ``.keras``)."""
    path = Path(path)
    suffix = path.suffix if keep_suffix else ""
    tag = f"{_origin()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    return path.with_name(f".{path.name}.{kind}-{tag}{suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


_TEMPORARY = re.compile(  # a name from temporary_sibling: .<name>.<kind>-<origin>-<pid>-<random>
    r"^\..+\.[a-z]+-(?P<origin>[0-9a-f]{10})-(?P<pid>\d+)-[0-9a-f]{12}(\.\w+)?$"
)
_swept: set[Path] = set()  # folders already swept by this process


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove, once per folder and process, the temporaries (files or folders) in ``path``'s
    folder that dead processes of this host and PID namespace left behind; returns what was
    removed. Names not written by :func:`temporary_sibling` are kept. One scan per folder keeps
    many writes into one folder (a shard's blocks) from rescanning it each time."""
    folder = Path(path).parent.resolve()
    if folder in _swept or not folder.is_dir():
        return []
    _swept.add(folder)
    removed = []
    for candidate in folder.iterdir():
        match = _TEMPORARY.match(candidate.name)
        if not match or match["origin"] != _origin() or _alive(int(match["pid"])):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    if removed:
        print(f"removed {len(removed)} temporary leftover(s) of interrupted writes in {folder}")
    return removed


def write_atomic(path: Path, write: Callable[[Path], None], keep_suffix: bool = False) -> Path:
    """Call ``write(tmp)`` for a temporary path beside ``path``, then rename it to ``path``
    (``keep_suffix``: see :func:`temporary_sibling`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temporary_sibling(path, keep_suffix=keep_suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_model(model, path: Path) -> Path:
    """Save a Keras model to ``path`` (``.keras``) atomically."""
    return write_atomic(path, model.save, keep_suffix=True)


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, payload, indent: int = 2) -> Path:
    """Write ``payload`` as JSON atomically; numpy scalars and arrays and paths are converted."""
    return write_text(path, json.dumps(payload, indent=indent, default=_jsonable) + "\n")


def make_temporary_dir(path: Path, kind: str = "tmp") -> Path:
    """Create an empty folder beside ``path`` (user's umask) to build ``path`` in."""
    remove_stale_temporaries(path)
    folder = temporary_sibling(path, kind)
    folder.mkdir(parents=True)
    return folder


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
