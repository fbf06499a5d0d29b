"""The yardstick of a trunk: what its frozen features know about real galaxies (issue 33, item 1).

Usage: python experiments/yardstick.py [--trunks simulated real random pixels] [--folds 5]
       [--ring-crops 0.5 0.7 1.0] [--out yardstick.json]

Every number comes from :mod:`zoolib.cnn.probes` on the shared real images (64 px greyscale,
read as notebook 01 reads a catalogue), on galaxies no shipped trunk was trained on:

* **rings** (``gz_decals_rings``, 310 DECaLS galaxies, 160 rings): linear-probe learning curves
  at 25, 50, 100, 200 and all training labels, 5-fold CV; precision@10 of same-label neighbours.
  Headline crop 0.5, fixed beforehand (DECaLS images are scaled to the galaxy like GZ2's, whose
  crop 0.5 was chosen by cross-validation on GZ2); ``--ring-crops`` shows the others beside it.
* **SDSS** (GZ1 classes, crop 0.4 as notebook 01): the 72 cutouts of ``sdss_gz1_sample`` kept out of
  the real model's training, and the half of the 3,845 ellipticals of ``sdss_gz1_more`` that
  ``real_trunk.py`` never trains on (1,922; :func:`real_trunk.held_out_more`). Smooth / featured
  zero-shot (the model's own head: rho of "smooth" > 0.5) and with a probe (5-fold CV, classes
  weighted equally); edge-on against the rest; spiral against the rest; precision@10 of GZ1 classes
  (elliptical, spiral, edge-on) on the 72 kept out.
* **GZ2** (``gz2_kaggle_sample``, crop 0.5): the 401 galaxies kept out of the real model's
  training; smooth / featured zero-shot and with a probe.

Rows: ``simulated`` (the shipped pretrained trunk), ``real`` (the shipped real-image model),
a folder holding a model and its manifest (a trunk being measured, named by the folder),
``random`` (the paper's CNN, untrained) and ``pixels`` (PCA-64 of 32 px greyscale): the floor
every new trunk must clear. Accuracy, balanced accuracy and per-class recall, with 95% bootstrap
intervals over galaxies. Results: ``docs/representations.md``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import real_trunk

from zoolib import files, paths, prepare
from zoolib.active import heads
from zoolib.cnn import posteriors, pretrained, probes, training
from zoolib.data import processed

SHARED = paths.PROJECT_ROOT.parent / "shared" / "data"
SPIRAL = {"spiral_clockwise", "spiral_anticlockwise"}
FEATURED = SPIRAL | {"edge_on"}
SIZES = (25, 50, 100, 200, probes.ALL)


def load(name: str, catalog: Path, crop: float, tmp: Path, image_size: int = 64,
         channels: int = 1, **kwargs) -> tuple[np.ndarray, pd.DataFrame]:  # fmt: skip
    """(images (G, S, S, C) uint8, catalogue) of a shared catalogue, as notebook 01 reads it."""
    prepare.prepare_catalog(name, catalog, image_size=image_size, channels=channels,
                            crop_fraction=crop, split_fractions=(1.0, 0.0, 0.0), root=tmp,
                            **kwargs)  # fmt: skip
    ds = processed.load_processed(name, root=tmp)
    return np.array(ds.images), ds.catalog  # a copy: the folder is temporary


def datasets(tmp: Path, ring_crops, image_size: int = 64, channels: int = 1) -> dict:
    """{name: (images, labels dict)} of every evaluation set: what real_trunk.py never trains on."""
    out, size = {}, {"image_size": image_size, "channels": channels}
    for crop in ring_crops:
        x, cat = load(f"rings-{crop}", SHARED / "gz_decals_rings" / "catalog.csv", crop, tmp,
                      tree="label:ring", **size)  # fmt: skip
        out[f"rings crop {crop}"] = (x, {"ring": cat["ring_yes"].to_numpy().astype(int)})
    x1, c1 = load("sdss", SHARED / "sdss_gz1_sample" / "catalog.csv", 0.4, tmp, **size)
    x2, c2 = load("sdss-more", SHARED / "sdss_gz1_more" / "catalog.csv", 0.4, tmp, **size)
    keep1 = ~real_trunk.training_mask("sdss", c1)
    keep2 = ~real_trunk.training_mask("sdss_more", c2)
    cls = np.r_[c1["gz1_class"].to_numpy()[keep1], c2["gz1_class"].to_numpy()[keep2]]
    out["sdss"] = (np.concatenate([x1[keep1], x2[keep2]]), {
        "smooth": (cls == "elliptical").astype(int), "edge-on": (cls == "edge_on").astype(int),
        "spiral": np.isin(cls, list(SPIRAL)).astype(int),
        "gz1 class": np.select([cls == "elliptical", np.isin(cls, list(SPIRAL))], [0, 1], 2),
        "kept out": np.r_[np.ones(keep1.sum(), bool), np.zeros(keep2.sum(), bool)],
    })  # fmt: skip
    x3, c3 = load("gz2", SHARED / "gz2_kaggle_sample" / "catalog.csv", 0.5, tmp, **size)
    keep = ~real_trunk.training_mask("gz2", c3)
    out["gz2"] = (x3[keep], {"smooth": (c3["gz2_class"].to_numpy()[keep] == "smooth").astype(int)})
    return out


def features(trunk: str, images: np.ndarray) -> np.ndarray:
    if trunk == "pixels":
        return probes.pixel_features(images)
    return probes.trunk_features(trunk, images)


def zero_shot(trunk: str, images: np.ndarray) -> np.ndarray | None:
    """(G, 2) [P(featured), P(smooth)] from a model's own head; None for random and pixels."""
    if trunk in ("random", "pixels"):
        return None
    model, manifest = pretrained.load(64, 1, pretrained.shipped_folder(trunk))
    column = manifest["architecture"]["questions"].index("smooth-or-featured")
    rho = posteriors.sample_rho(model, images, 30, seed=0).mean(-1)[:, column]
    return np.stack([1 - rho, rho], axis=1)


def neighbours(precision: np.ndarray) -> dict:
    value, interval = probes.bootstrap_mean(precision)
    return {"labels": "-", "galaxies": len(precision), "value": value, "value 95%": interval}


def measure(trunk: str, data: dict, n_folds: int) -> list[dict]:
    rows = []
    for name, (images, labels) in data.items():
        f = features(trunk, images)
        base = {"trunk": Path(trunk).name, "set": name}
        if name.startswith("rings"):
            curve = probes.learning_curve(f, labels["ring"], SIZES, n_folds)
            rows += [{**base, "task": "ring probe", **r} for r in curve.to_dict("records")]
            p10 = probes.precision_at_k(f, labels["ring"], 10)
            rows.append({**base, "task": "ring precision@10", **neighbours(p10)})
            continue
        for task in ("smooth", "edge-on", "spiral") if name == "sdss" else ("smooth",):
            curve = probes.learning_curve(f, labels[task], (probes.ALL,), n_folds)
            rows.append({**base, "task": f"{task} probe", **curve.iloc[0].to_dict()})
        prob = zero_shot(trunk, images)
        if prob is not None:
            rows.append({**base, "task": "smooth zero-shot", "labels": 0,
                         **probes.scores(prob, labels["smooth"])})  # fmt: skip
        if name == "sdss":
            mine = labels["kept out"]
            p10 = probes.precision_at_k(f[mine], labels["gz1 class"][mine], 10)
            rows.append({**base, "task": "gz1 class precision@10", **neighbours(p10)})
    return rows


TUNE = {  # regime: (learning rate, trunk trainable); new_label.py's fine-tuning settings
    "fine-tune": (1e-4, True),
    "keras head": (1e-3, False),
    "numpy head": (None, False),  # notebook 02's frozen regime: zoolib.active.heads' head
}


def numpy_head(f, labels, train, test, seed: int) -> np.ndarray:
    """(test, 2) probabilities of notebook 04's MC-dropout head (zoolib.active.heads, its
    default settings) fitted on the frozen trunk's features ``f``: notebook 02's frozen regime."""
    k, n = labels[:, None].astype(float), np.ones((len(labels), 1))
    rng = np.random.default_rng(seed)
    w, b = heads.fit(f[train], k[train], n[train], heads.HeadSettings(), rng)
    rho = heads.sample_rho(f[test], w, b, 30, 0.5, rng).mean(-1)[:, 0]
    return np.stack([1 - rho, rho], 1)


def tuned_curve(folder: str, images, labels, sizes, n_folds: int, regime: str) -> list[dict]:
    """Out-of-fold ring scores of ways to learn a new label from a model folder's CNN, with the
    probe's folds and draws: ``fine-tune`` trains every layer (Adam 1e-4), ``keras head`` only
    a new Keras MC-dropout head on the frozen trunk (Adam 1e-3), both in batches of 16, at most
    60 epochs, early stopping (patience 8) on ``training.fit_labels``' inner split (about 20%,
    at least 4); ``numpy head`` fits notebook 02's frozen regime (:func:`numpy_head`)."""
    rate, trainable = TUNE[regime]
    fold = probes.stratified_folds(labels, n_folds, 0)
    votes = np.stack([labels, np.ones_like(labels)], -1)[:, None, :].astype(np.float32)
    folder = pretrained.shipped_folder(folder)
    features = probes.trunk_features(str(folder), images) if rate is None else None  # once
    rows = []
    for size in sizes:
        prob, start = np.zeros((len(labels), 2)), time.perf_counter()  # (rate None: numpy head)
        for f in range(n_folds):
            pool, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            train = pool[probes.stratified_sample(labels[pool], size, seed=f)]
            if rate is None:
                prob[test] = numpy_head(features, labels, train, test, seed=f)
                continue

            def build(f=f):
                model = pretrained.initial_model(["ring"], 64, 1, seed=f, folder=folder)[0]
                model.get_layer("trunk").trainable = trainable
                return model

            fit = training.FitSettings(epochs=60, batch_size=16, learning_rate=rate, patience=8,
                                       val_fraction=0.2, val_batch_size=64, seed=f)  # fmt: skip
            _, _, model = training.fit_labels(build, images[train], votes[train], fit,
                                              keep_start=False)  # fmt: skip
            rho = posteriors.sample_rho(model, images[test], 30, seed=f).mean(-1)[:, 0]
            prob[test] = np.stack([1 - rho, rho], 1)
        rows.append({"labels": "all" if size == probes.ALL else size,
                     "seconds": round(time.perf_counter() - start),
                     **probes.scores(prob, labels)})  # fmt: skip
        print(regime, rows[-1]["labels"], round(rows[-1]["balanced accuracy"], 3), flush=True)
    return rows


def cell(row: dict, key: str = "balanced accuracy") -> str:
    return f"{row[key]:.3f} {row[key + ' 95%']}"


def markdown(rows: list[dict], crop: float = 0.5) -> str:
    """The two tables of docs/representations.md: rings by training labels (at ``crop``), and
    the surveys (balanced accuracy; precision@10 as the share of same-label neighbours)."""
    t = pd.DataFrame(rows).drop_duplicates(["trunk", "set", "task", "labels"], keep="last")
    trunks = list(dict.fromkeys(t["trunk"]))
    ring = t[(t["set"] == f"rings crop {crop}") & t["task"].isin(["ring probe",
                                                                  "ring precision@10"])]
    sizes = [s for s in ring["labels"].unique() if s != "-"]
    lines = ["| trunk | " + " | ".join(f"{s} labels" for s in sizes) + " | precision@10 |",
             "| --- " * (len(sizes) + 2) + "|"]  # fmt: skip
    for trunk in trunks:
        mine = ring[ring["trunk"] == trunk].set_index("labels")
        probe = [cell(mine.loc[s]) for s in sizes]
        lines.append(f"| {trunk} | " + " | ".join(probe) + f" | {cell(mine.loc['-'], 'value')} |")
    tasks = [("sdss", "smooth zero-shot"), ("sdss", "smooth probe"), ("sdss", "edge-on probe"),
             ("sdss", "spiral probe"), ("sdss", "gz1 class precision@10"),
             ("gz2", "smooth zero-shot"), ("gz2", "smooth probe")]  # fmt: skip
    lines += ["", "| trunk | " + " | ".join(f"{s.upper()} {task}" for s, task in tasks) + " |",
              "| --- " * (len(tasks) + 1) + "|"]  # fmt: skip
    for trunk in trunks:
        out = []
        for survey, task in tasks:
            row = t[(t["trunk"] == trunk) & (t["set"] == survey) & (t["task"] == task)]
            key = "value" if "precision" in task else "balanced accuracy"
            out.append(cell(row.iloc[0].to_dict(), key) if len(row) else "-")
        lines.append(f"| {trunk} | " + " | ".join(out) + " |")
    tuned = t[t["task"].isin([f"ring {regime}" for regime in TUNE])]
    if len(tuned):
        sizes = list(dict.fromkeys(tuned["labels"]))
        lines += ["", "| trunk | regime | " + " | ".join(f"{s} labels" for s in sizes) + " |",
                  "| --- " * (len(sizes) + 2) + "|"]  # fmt: skip
        for (trunk, task), part in tuned.groupby(["trunk", "task"], sort=False):
            mine = part.set_index("labels")
            lines.append(f"| {trunk} | {task[5:]} | " + " | ".join(
                cell(mine.loc[s]) if s in mine.index else "-" for s in sizes) + " |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trunks", nargs="+", default=["simulated", "real", "random", "pixels"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--ring-crops", type=float, nargs="+", default=[0.5, 0.7, 1.0])
    parser.add_argument("--out", type=Path, default=Path("yardstick.json"))
    parser.add_argument("--tune", nargs="*", default=[], choices=list(TUNE),
                        help="also ring curves of notebook 02's regimes (trunks with a model)")
    parser.add_argument("--tune-sizes", type=int, nargs="+", default=[50, 100, probes.ALL])
    parser.add_argument("--tables", type=Path, nargs="+",
                        help="print the tables of earlier runs' files together, measure nothing")
    args = parser.parse_args()
    if args.tables:
        rows = [r for path in args.tables for r in json.loads(path.read_text())["rows"]]
        print(markdown(rows, args.ring_crops[0]))
        return
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = datasets(Path(tmp), args.ring_crops)
    for name, (images, labels) in data.items():
        counts = {k: np.bincount(v).tolist() for k, v in labels.items() if v.dtype != bool}
        print(f"{name}: {len(images)} galaxies; label counts {counts}", flush=True)
    rows = []
    for trunk in args.trunks:  # the file is rewritten after each trunk: a long run keeps its part
        rows += measure(trunk, data, args.folds)
        for regime in args.tune if trunk not in ("random", "pixels") else []:
            x, labels = data[f"rings crop {args.ring_crops[0]}"]
            curve = tuned_curve(trunk, x, labels["ring"], args.tune_sizes, args.folds, regime)
            rows += [{"trunk": Path(trunk).name, "set": f"rings crop {args.ring_crops[0]}",
                      "task": f"ring {regime}", **r} for r in curve]  # fmt: skip
        files.write_json(args.out, {"rows": rows, "seconds": round(time.perf_counter() - start)})
        print(f"{trunk} done, {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    cols = ["trunk", "set", "task", "labels", "accuracy", "balanced accuracy",
            "balanced accuracy 95%", "recall 0", "recall 1", "value", "value 95%"]  # fmt: skip
    with pd.option_context("display.width", 250, "display.max_rows", 500):
        print(table[[c for c in cols if c in table]].round(3).to_string(index=False))
    print(markdown(rows, args.ring_crops[0]))
    print(f"{time.perf_counter() - start:.0f} s; rows -> {args.out}")


if __name__ == "__main__":
    main()
