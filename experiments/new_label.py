"""A new label from few examples, the way Zoobot is used: how many labels does it take?

Usage: python experiments/new_label.py [--sizes 50 100 200] [--folds 5]
       [--regimes head finetune scratch]

Data: the 400 shared SDSS cutouts with Galaxy Zoo 1 classes (``../shared/data/sdss_gz1_sample``,
64 px greyscale, crop 0.4 as notebook 01 crops real images), and a label no zoo model was
trained on: **is it edge-on?** (the GZ1 ``edge_on`` class, 120 of 400, against every other
class), one vote each (N = 1). The simulated universe the shipped CNN was pretrained on has a
disk-edge-on *question*, so this measures transfer to a related label on real images, the
common case of a new label; the real-image CNN is not used (it saw these images).

For each of ``--folds`` stratified test folds (80 galaxies), n = ``--sizes`` training galaxies
are drawn from the other folds (stratified, seed = fold) and each regime is fitted:

* ``head``: the shipped pretrained trunk frozen, a new MC-dropout head (zoolib.active.heads,
  notebook 04's settings);
* ``finetune``: the shipped pretrained CNN with a new output, every layer, Adam 1e-4 (notebook
  02's fine-tuning), early stopping on about 20% of the n (``training.fit_labels``' inner split,
  at least 4 galaxies; batches of 16, patience 8, at most 60 epochs);
* ``scratch``: the paper's CNN from random weights, Adam 1e-3, the same early stopping.

``--save models/edge_on.keras`` instead trains the frozen-trunk regime on all 400 and saves it
with a card naming the new question, for ``python -m zoolib predict``.

Out-of-fold accuracy (rho > 0.5 against the label) and Bernoulli NLL, pooled over the folds
(400 galaxies per cell), with 95% bootstrap intervals over galaxies; the constant prediction's
NLL beside them. Results: ``docs/data.md``, "A new label from few examples".
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from real_model import SHARED, scores

from zoolib import files, prepare
from zoolib.active import heads
from zoolib.cnn import cards, models, posteriors, pretrained, probes, training
from zoolib.data import images, processed

CATALOG = SHARED / "sdss_gz1_sample" / "catalog.csv"
LABEL = "edge-on-label"


def load(tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    prepare.prepare_catalog("sdss", CATALOG, image_size=64, crop_fraction=0.4,
                            split_fractions=(1.0, 0.0, 0.0), root=tmp)  # fmt: skip
    ds = processed.load_processed("sdss", root=tmp)
    return np.asarray(ds.images), (ds.catalog["gz1_class"] == "edge_on").to_numpy()


def subsample(y: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Positions of ``size`` items drawn at random, each class in its share (rounded)."""
    rng = np.random.default_rng(seed)
    n_pos = round(size * y.mean())
    pos = rng.choice(np.flatnonzero(y), n_pos, replace=False)
    neg = rng.choice(np.flatnonzero(~y), size - n_pos, replace=False)
    return np.sort(np.concatenate([pos, neg]))


def fit_predict(regime: str, x, y, train, test, seed: int) -> np.ndarray:
    """Mean MC-dropout rho (T = 30) of the test rows after training on the train rows."""
    rng = np.random.default_rng(seed)
    if regime == "head":
        trunk, _ = pretrained.load(64, 1)
        f = posteriors.trunk_features(trunk, x)
        k, n = y[:, None].astype(float), np.ones((len(y), 1))
        w, b = heads.fit(f[train], k[train], n[train], heads.HeadSettings(), rng)
        return heads.sample_rho(f[test], w, b, 30, 0.5, rng).mean(-1)[:, 0]
    votes = np.stack([y, np.ones_like(y)], -1)[:, None, :].astype(np.float32)
    if regime == "finetune":
        build, rate = (lambda: pretrained.initial_model([LABEL], seed=seed)[0]), 1e-4
    else:
        build, rate = (lambda: models.build_bayesian_cnn(64, 1, 1, seed=seed)), 1e-3
    fit = training.FitSettings(epochs=60, batch_size=16, learning_rate=rate, patience=8,
                               val_fraction=0.2, val_batch_size=64, seed=seed)  # fmt: skip
    _, _, model = training.fit_labels(build, x[train], votes[train], fit,
                                      keep_start=regime == "finetune")  # fmt: skip
    return posteriors.sample_rho(model, x[test], 30, seed=seed).mean(-1)[:, 0]


def save(x, y, path: Path) -> Path:
    """The frozen-trunk regime trained on every galaxy, as a Keras model ``predict`` runs, with
    a card whose own tree names the new question (rho = P(yes, edge-on))."""
    model, _ = pretrained.initial_model([LABEL], seed=0)
    head = models.split_trunk_head(model)[1]
    f = posteriors.trunk_features(model, x)
    k, n = y[:, None].astype(float), np.ones((len(y), 1))
    w, b = heads.fit(f, k, n, heads.HeadSettings(), np.random.default_rng(0))
    head.get_layer("logits").set_weights([w.astype(np.float32), b.astype(np.float32)])
    files.save_model(model, path)
    tree = {LABEL: {"answers": ["yes", "no"]}}
    cards.ModelCard([LABEL], 64, 1, model_name=path.stem, dropout_rate=0.5, seed=0,
                    training_images="real", crop_fraction=0.4, stretch=images.STRETCH,
                    tree=tree, extra={"trained_on": f"{len(y)} SDSS cutouts, {CATALOG.name}",
                                      "regime": "head"}).write(path)  # fmt: skip
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--regimes", nargs="+", default=["head", "finetune", "scratch"])
    parser.add_argument("--save", type=Path, help="also save the frozen-trunk model here (.keras)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        x, y = load(Path(tmp))
    if args.save:
        print("saved", save(x, y, args.save))
        return
    fold = probes.stratified_folds(y.astype(int), args.folds)
    rows = []
    for regime in args.regimes:
        for size in args.sizes:
            start, rho = time.perf_counter(), np.empty(len(y))
            for f in range(args.folds):
                pool, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
                train = pool[subsample(y[pool], size, seed=f)]
                rho[test] = fit_predict(regime, x, y, train, test, seed=f)
            share = y.mean()
            constant = -np.mean(np.where(y, np.log(share), np.log1p(-share)))
            rows.append({"regime": regime, "labels": size, **scores(rho, y),
                         "constant nll": round(float(constant), 4),
                         "seconds": round(time.perf_counter() - start)})  # fmt: skip
            print(pd.DataFrame([rows[-1]]).to_string(index=False, header=len(rows) == 1),
                  flush=True)  # fmt: skip
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
