"""Atomic file writes, JSON and hashes: the one home for how zoolib puts files on disk.

Every writer here writes to a temporary name beside the target (``.<name>.<random>.tmp``) and
renames it into place, so a killed job leaves either the old file or the new one, never half of
one, and an error removes the temporary. Files and folders are created with plain ``open`` and
``os.mkdir``, so they get the user's umask (``tempfile.mkstemp``/``mkdtemp`` would make them
private, mode 0600/0700, and a colleague could not read a shared project's reports).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np


def temporary_sibling(path: Path, kind: str = "tmp", keep_suffix: bool = False) -> Path:
    """A fresh, unused name beside ``path`` (hidden, with a random part); ``keep_suffix`` ends
    it with ``path``'s suffix too, for writers that insist on one (Keras: ``.keras``)."""
    path = Path(path)
    suffix = path.suffix if keep_suffix else ""
    return path.with_name(f".{path.name}.{kind}-{uuid.uuid4().hex[:12]}{suffix}")


def write_atomic(path: Path, write: Callable[[Path], None], keep_suffix: bool = False) -> Path:
    """Call ``write(tmp)`` for a temporary path beside ``path``, then rename it to ``path``
    (``keep_suffix``: see :func:`temporary_sibling`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
