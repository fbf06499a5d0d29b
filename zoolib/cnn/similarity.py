r"""Galaxies like this one, and the most unusual galaxies of a catalogue, from trunk features.

A trunk maps each galaxy to F features (``python -m zoolib predict --representations`` writes
them, :func:`read_representations` reads them back). Here they are compared as Zoobot's users
compare them (Walmsley et al. 2022, MNRAS 513, 1581):

* **Standardise** (:func:`standardise`): each feature minus its mean over the catalogue, divided
  by its standard deviation (a constant feature is left at 0), then each galaxy's vector scaled
  to unit length, so that the dot product of two rows is their **cosine similarity**
  :math:`s_{gh} \in [-1, 1]`.
* **Nearest neighbours** (:func:`nearest`): the k rows of highest :math:`s_{gh}`, the galaxy
  itself left out, ties broken by position.
* **Unusual** (:func:`unusualness`): :math:`u_g = 1 - \frac1k \sum_{h \in N_k(g)} s_{gh}`, one
  minus the mean similarity to its k nearest neighbours (a k-nearest-neighbour outlier score):
  a galaxy that resembles nothing else in the catalogue scores high. It finds what the trunk
  finds unusual, which includes artefacts and bad cutouts as well as rare morphologies.

Shapes: features (G, F); neighbour indices and similarities (Q, k). Blocks of 1,024 rows keep
memory at O(1,024 G). :func:`zoolib.cnn.probes.precision_at_k` scores a trunk by these
neighbours; ``docs/representations.md`` measures them on real galaxies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BLOCK = 1024


def standardise(features) -> np.ndarray:
    """(G, F) features z-scored per feature and scaled to unit length per galaxy (float64)."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"features must be (G >= 2, F), got shape {x.shape}")
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ValueError(f"features of row {row} are not finite")
    sd = x.std(0)
    x = (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest(features, k: int = 10, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """(indices (Q, k), cosine similarities (Q, k)) of the k nearest neighbours of each of
    ``rows`` (default: every galaxy), most similar first, the galaxy itself left out."""
    x = standardise(features)
    rows = np.arange(len(x)) if rows is None else np.atleast_1d(np.asarray(rows, int))
    if not 0 < k < len(x):
        raise ValueError(f"k must be between 1 and {len(x) - 1} (galaxies - 1), got {k}")
    if rows.size and (rows.min() < 0 or rows.max() >= len(x)):
        raise ValueError(f"rows must be between 0 and {len(x) - 1}, got {rows.tolist()}")
    index, sims = np.empty((len(rows), k), int), np.empty((len(rows), k))
    for start in range(0, len(rows), BLOCK):
        part = rows[start : start + BLOCK]
        sim = x[part] @ x.T
        sim[np.arange(len(part)), part] = -np.inf  # not its own neighbour
        near = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        index[start : start + len(part)] = near
        sims[start : start + len(part)] = np.take_along_axis(sim, near, axis=1)
    return index, sims


def unusualness(features, k: int = 10) -> np.ndarray:
    """(G,) one minus each galaxy's mean cosine similarity to its k nearest neighbours."""
    return 1.0 - nearest(features, k)[1].mean(axis=1)


def read_representations(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(ids (G,) str, features (G, F) float32) from ``predict --representations``'s Parquet."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    names = [c for c in table.column_names if c.startswith("feature_")]
    if not names:
        raise ValueError(f"{path} has no feature_* columns: write it with predict "
                         "--representations")  # fmt: skip
    ids = np.asarray(table.column("id_str").to_pylist(), str)
    return ids, np.stack([table.column(c).to_numpy() for c in names], axis=1).astype(np.float32)
