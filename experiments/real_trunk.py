"""A trunk trained on every real image zoo has: SimCLR and multi-task labels (issue 33).

Usage:
    python experiments/real_trunk.py [--config simclr_multitask] [--epochs N]
                                     [--out zoolib/cnn/shipped/real]

Makes the real model from the shipped simulated CNN (its trunk as the start) with
:func:`zoolib.cnn.contrastive.train` on the shared real images, 64 px greyscale, read as
notebook 01 reads a catalogue (crop 0.4 for SDSS cutouts, 0.5 for GZ2's galaxy-scaled images,
the crops chosen for the real model by cross-validation, ``docs/data.md``):

* ``sdss_gz1_sample``, the 328 not kept out: the GZ1 class as four tasks, smooth-or-featured
  (elliptical against spiral or edge-on), disk-edge-on (edge-on against spiral), spiral (against
  the rest) and merger (against the rest); don't-know galaxies have no label;
* ``sdss_gz1_more``, the half not held out (1,923 ellipticals): smooth, not spiral, not merger;
* ``gz2_kaggle_sample``, the 1,599 not kept out: smooth-or-featured (the GZ2 consensus);
* ``gz2_kaggle_unlabelled``, all 3,859: no labels (contrastive only).

**Never trained on:** the rings (``gz_decals_rings``, the test of a new label; with them the 28
``gz_decals_dr5`` images, which are ring galaxies too, so no DECaLS votes are used), and the
yardstick's held-out galaxies: the 72 SDSS and 401 GZ2 galaxies the first real model kept out
(:func:`real_model.kept_out`) and half of ``sdss_gz1_more`` (:func:`held_out_more`). Class weights:
within each survey (SDSS: both SDSS catalogues) and task, both classes weigh the same in total
(:func:`zoolib.cnn.contrastive.balance`). The shipped model keeps the two schema questions (smooth-
or-featured, disk-edge-on); the spiral and merger heads are training signals only. Results:
``docs/representations.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from real_model import SHARED, crop_note, kept_out

from zoolib import files, paths, prepare
from zoolib.cnn import cards, contrastive, models, pretrained
from zoolib.cnn import precision as zprecision
from zoolib.data import images, processed

TASKS = ("smooth-or-featured", "disk-edge-on", "spiral", "merger")
SHIPPED_TASKS = TASKS[:2]  # the schema's questions; the shipped model predicts these
CROPS = {"sdss": 0.4, "gz2": 0.5}
CATALOGS = {  # name: (folder, survey, class column or None)
    "sdss": ("sdss_gz1_sample", "sdss", "gz1_class"),
    "sdss_more": ("sdss_gz1_more", "sdss", "gz1_class"),
    "gz2": ("gz2_kaggle_sample", "gz2", "gz2_class"),
    "gz2_unlabelled": ("gz2_kaggle_unlabelled", "gz2", None),
}
HELD_OUT_SEED = 2026
CONFIGS = {
    "simclr_multitask": contrastive.Settings(),
    "multitask": contrastive.Settings(contrastive_weight=0.0),
    "simclr": contrastive.Settings(supervised_weight=0.0),
}
SPIRAL = ("spiral_clockwise", "spiral_anticlockwise")


def held_out_more(ids) -> np.ndarray:
    """The half of ``sdss_gz1_more`` kept for the yardstick: a random half (seed 2026)."""
    order = np.random.default_rng(HELD_OUT_SEED).permutation(len(ids))
    mask = np.zeros(len(ids), bool)
    mask[order[: len(ids) // 2]] = True
    return mask


def gz1_votes(cls: np.ndarray) -> np.ndarray:
    """(G, 4, 2) votes (k, N) of GZ1 classes on :data:`TASKS`."""
    ell, edge, spiral = cls == "elliptical", cls == "edge_on", np.isin(cls, SPIRAL)
    merger, known = cls == "merger", cls != "dont_know"
    featured = edge | spiral
    k = np.stack([ell, edge, spiral, merger], 1)
    n = np.stack([ell | featured, featured, known, known], 1)
    return np.stack([k, n], -1).astype(np.float32)


def votes_of(name: str, catalog) -> np.ndarray:
    if name in ("sdss", "sdss_more"):
        return gz1_votes(catalog["gz1_class"].to_numpy())
    out = np.zeros((len(catalog), len(TASKS), 2), np.float32)
    if name == "gz2":
        out[:, 0] = np.stack([catalog["gz2_class"].to_numpy() == "smooth", np.ones(len(out))], 1)
    return out


def training_mask(name: str, catalog) -> np.ndarray:
    """True for the galaxies this script may train on."""
    if name == "sdss_more":
        return ~held_out_more(catalog["id_str"].to_numpy())
    if name in ("sdss", "gz2"):
        cls = catalog[CATALOGS[name][2]].to_numpy()
        smooth = np.isin(cls, ["elliptical", "smooth"])
        labelled = np.isin(cls, ["elliptical", "edge_on", *SPIRAL, "smooth", "featured"])
        out = np.ones(len(cls), bool)  # kept_out's rule on the galaxies real_model used
        out[np.flatnonzero(labelled)] = ~kept_out(smooth[labelled])
        return out
    if name == "gz2_unlabelled":
        return np.ones(len(catalog), bool)
    raise ValueError(f"no training rule for catalogue {name!r}: say which of its galaxies the "
                     "yardstick keeps out before training on it")  # fmt: skip


def load(tmp: Path, image_size: int = 64, channels: int = 1) -> dict:
    """{name: (images, votes, ids, catalogue sha256)} of the galaxies to train on."""
    out = {}
    for name, (folder, survey, _) in CATALOGS.items():
        path = SHARED / folder / "catalog.csv"
        if CATALOGS[name][2] is None:  # no labels: prepare_catalog wants some, so read directly
            catalog = pd.read_csv(path, dtype={"id_str": str})
            x, _ = images.load_images([path.parent / f for f in catalog["file"]], image_size,
                                      channels, CROPS[survey])  # fmt: skip
        else:
            prepare.prepare_catalog(name, path, image_size=image_size, channels=channels,
                                    crop_fraction=CROPS[survey], split_fractions=(1.0, 0.0, 0.0),
                                    root=tmp)  # fmt: skip
            ds = processed.load_processed(name, root=tmp)
            catalog, x = ds.catalog, ds.images
        keep = training_mask(name, catalog)
        out[name] = (np.array(x[np.flatnonzero(keep)]), votes_of(name, catalog)[keep],
                     catalog["id_str"].to_numpy()[~keep].tolist(), files.sha256(path))
        print(f"{name}: {keep.sum()} to train on, {(~keep).sum()} held out", flush=True)
    return out


def stacked(data: dict) -> tuple[np.ndarray, np.ndarray]:
    """:func:`load`'s catalogues as one array of images and one of votes, each survey's classes
    weighing the same (:func:`zoolib.cnn.contrastive.balance`)."""
    x = np.concatenate([d[0] for d in data.values()])
    survey = np.concatenate([[CATALOGS[n][1]] * len(d[0]) for n, d in data.items()])
    votes = np.concatenate([d[1] for d in data.values()])
    for s in CROPS:
        votes[survey == s] = contrastive.balance(votes[survey == s])
    return x, votes


def write(trunk, head, final: Path, settings, config: str, data: dict, history: dict) -> dict:
    """The shipped format (``zoolib/cnn/shipped/real/``): model, card and manifest, written to
    a sibling folder first and moved into place together (a failure leaves ``final`` as it
    was)."""
    out = final.with_name(final.name + ".new")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    model = models.build_bayesian_cnn(64, 1, len(SHIPPED_TASKS), settings.dropout_rate,
                                      dense_activation="leaky_relu")  # fmt: skip
    new_trunk, new_head = models.split_trunk_head(model)
    new_trunk.set_weights(trunk.get_weights())
    kernel, bias = head.get_layer("logits").get_weights()
    new_head.get_layer("logits").set_weights([kernel[:, : len(SHIPPED_TASKS)],
                                              bias[: len(SHIPPED_TASKS)]])  # fmt: skip
    model_file = out / "bayesian_cnn_real_64px.keras"
    files.save_model(model, model_file)
    source = pretrained.read_manifest()
    manifest = {
        "file": model_file.name, "sha256": files.sha256(model_file),
        "bytes": model_file.stat().st_size,
        "command": f"python experiments/real_trunk.py --config {config} --epochs {settings.epochs}",
        "settings": {**asdict(settings), "config": config},
        "architecture": {**source["architecture"], "questions": list(SHIPPED_TASKS),
                         "parameters": model.count_params()},
        "training_tasks": list(TASKS),
        "started_from": {"file": source["file"], "sha256": source["sha256"]},
        "training_images": "real", "crop_fraction": CROPS,
        "never_trained_on": ["gz_decals_rings (the new-label test)",
                             "gz_decals_dr5 (its 28 images are ring galaxies)"],
        "data": {name: {"catalog": f"{CATALOGS[name][0]}/catalog.csv", "catalog_sha256": d[3],
                        "trained_on": len(d[0]), "kept_out": len(d[2]), "kept_out_ids": d[2]}
                 for name, d in data.items()},
        "history": history, "train_seconds": round(sum(history["seconds"])),
        "precision": zprecision.choose(settings.precision, "train").policy,
        "where": {"cpu": zprecision.cpu_model(), "cpus": os.cpu_count(),
                  "gpu": bool(tf.config.list_physical_devices("GPU"))},
    }  # fmt: skip
    files.write_json(out / "manifest.json", manifest)
    write_card(model_file, settings, manifest["precision"])
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    out.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return manifest


def write_card(model_file: Path, settings: contrastive.Settings, policy: str) -> Path:
    """The model card beside the shipped file: its questions and the crop predict applies."""
    return cards.ModelCard(
        list(SHIPPED_TASKS), 64, 1, model_name=model_file.stem,
        dropout_rate=settings.dropout_rate, epochs_run=settings.epochs, seed=settings.seed,
        precision=policy, training_images="real", crop_fraction=CROPS["sdss"],
        stretch=images.STRETCH, extra={"crop_by_survey": CROPS, "crop_note": crop_note(CROPS),
              "image_formats": ["jpeg"]},
    ).write(model_file)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="simclr_multitask", choices=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=paths.PRETRAINED_REAL_DIR)
    args = parser.parse_args()
    settings = CONFIGS[args.config]
    if args.epochs is not None:
        settings = replace(settings, epochs=args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        data = load(Path(tmp))
    x, votes = stacked(data)
    start_model, _ = pretrained.load(64, 1)
    trunk, _ = models.split_trunk_head(start_model)
    print(f"training on {len(x)} images, {settings}", flush=True)
    start = time.perf_counter()
    head, history = contrastive.train(trunk, x, votes, settings)
    print(f"{time.perf_counter() - start:.0f} s", flush=True)
    manifest = write(trunk, head, args.out, settings, args.config, data, history)
    print(json.dumps({k: v for k, v in manifest.items() if k != "data"}, indent=1))


if __name__ == "__main__":
    main()
