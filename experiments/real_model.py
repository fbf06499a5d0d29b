"""A CNN that has seen real galaxies: choices measured by cross-validation, then a model.

Its ``train`` made the first shipped real model (2026-12-03); since 2026-12-05 the shipped one is
made by ``experiments/real_trunk.py`` (``make pretrain-real``), with the same kept-out galaxies.

Usage:
    python experiments/real_model.py measure [--folds 3] [--configs grey colour ...]
    python experiments/real_model.py starts [--folds 3]
    python experiments/real_model.py train [--config grey] [--out zoolib/cnn/shipped/real]

Data: the shared real images with a consensus smooth / featured class, read as notebook 01 reads
a catalogue (64 px, :func:`zoolib.prepare.prepare_catalog`):

* ``sdss``: 400 SDSS cutouts (423 px, fixed angular scale: a galaxy fills a small part) with
  Galaxy Zoo 1 classes; elliptical = smooth, spiral / edge-on = featured (don't-know and merger
  left out);
* ``gz2``: 2,000 GZ2 images of the Kaggle challenge (424 px, scaled to the galaxy) with a GZ2
  consensus class.

**Kept out.** Before anything is measured, 20% of each survey's galaxies (stratified by class,
seed 2026, :func:`kept_out`) are set aside: no choice is measured on them and the shipped model
never trains on them; ``train`` reports its zero-shot accuracy there. ``measure`` cuts the other
80% into stratified folds; for each fold the pretrained simulated CNN is fine-tuned on the other
folds of both surveys together (10% of them held out for early stopping) and predicts the fold.
Accuracy (rho_smooth > 0.5 against the class) and Bernoulli NLL of the out-of-fold predictions
are reported per survey with 95% bootstrap intervals over galaxies. Results:
``docs/data.md``, "A model that has seen real galaxies".
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from zoolib import files, paths, prepare
from zoolib.cnn import cards, models, posteriors, pretrained, probes, training
from zoolib.cnn import precision as zprecision
from zoolib.data import images, processed

QUESTION = "smooth-or-featured"
SHARED = paths.PROJECT_ROOT.parent / "shared" / "data"
SURVEYS = {  # catalogue, class column, smooth classes, featured classes
    "sdss": (SHARED / "sdss_gz1_sample" / "catalog.csv", "gz1_class", {"elliptical"},
             {"spiral_clockwise", "spiral_anticlockwise", "edge_on"}),
    "gz2": (SHARED / "gz2_kaggle_sample" / "catalog.csv", "gz2_class", {"smooth"}, {"featured"}),
}  # fmt: skip
KEPT_OUT, KEPT_OUT_SEED = 0.2, 2026
def crop_note(crops: dict) -> str:
    """The card's note on which crop to pass for which images (predict prints it)."""
    return ("crop_fraction is for fixed-scale survey cutouts like SDSS's 423 px; for images "
            f"already scaled to the galaxy (GZ2's) pass --crop-fraction {crops['gz2']:g}")


@dataclass(frozen=True)
class Config:
    """One way to make the images and fine-tune."""

    channels: int = 1
    crops: dict = field(default_factory=lambda: {"sdss": 0.4, "gz2": 0.5})
    learning_rate: float = 1e-4
    epochs: int = 30
    patience: int = 5
    batch_size: int = 32
    augment: bool = True
    image_size: int = 64
    scratch: bool = False  # a fresh CNN instead of the simulated start (any image size)


CONFIGS = {
    "grey": Config(),
    "grey_whole_gz2": Config(crops={"sdss": 0.4, "gz2": 1.0}),
    "grey_sdss_0.3": Config(crops={"sdss": 0.3, "gz2": 0.5}),
    "colour": Config(channels=3),
    "grey_lr_3e-4": Config(learning_rate=3e-4),
    "grey_no_augment": Config(augment=False),
    # image size: the shipped trunk takes 64 px only, so size is measured from scratch
    "scratch_64": Config(scratch=True),
    "scratch_96": Config(scratch=True, image_size=96),
}


def kept_out(smooth: np.ndarray) -> np.ndarray:
    """The kept-out mask: a stratified 20% (fold 0 of 5, seed 2026)."""
    return probes.stratified_folds(smooth.astype(int), round(1 / KEPT_OUT), KEPT_OUT_SEED) == 0


def load(survey: str, crop: float, channels: int, tmp: Path,
         size: int = 64) -> tuple[np.ndarray, np.ndarray, list]:  # fmt: skip
    """(images, smooth, ids) of a survey's galaxies with a smooth or featured class."""
    path, column, smooth_set, featured_set = SURVEYS[survey]
    name = f"{survey}-{crop}-{channels}" + (f"-{size}px" if size != 64 else "")
    if not (tmp / name).exists():
        prepare.prepare_catalog(name, path, image_size=size, channels=channels, crop_fraction=crop,
                                split_fractions=(1.0, 0.0, 0.0), root=tmp)  # fmt: skip
    ds = processed.load_processed(name, root=tmp)
    cls = ds.catalog[column].to_numpy()
    use = np.flatnonzero(np.isin(cls, list(smooth_set | featured_set)))
    smooth = np.isin(cls[use], list(smooth_set))
    return np.asarray(ds.images[use]), smooth, ds.catalog["id_str"].to_numpy()[use].tolist()


def fine_tune(x, smooth, config: Config, seed: int, policy: str, start=None):
    """A CNN fine-tuned on (x, smooth), 10% held out for early stopping, from ``start()`` (default:
    the pretrained simulated CNN)."""
    votes = np.stack([smooth, np.ones_like(smooth)], -1)[:, None, :].astype(np.float32)  # (n, 1, 2)
    fit = training.FitSettings(
        epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
        patience=config.patience, augment=config.augment, val_fraction=0.1, val_batch_size=256,
        seed=seed,
    )

    def build():
        if start is not None:
            return start()
        if config.scratch:
            return models.build_bayesian_cnn(config.image_size, config.channels, 1, seed=seed,
                                             dense_activation="leaky_relu")  # fmt: skip
        return pretrained.initial_model([QUESTION], 64, config.channels, seed=seed)[0]

    history, _, model = training.fit_labels(build, x, votes, fit, keep_start=True,
                                            precision=policy)  # fmt: skip
    return model, history


def rho_smooth(model, x, seed: int) -> np.ndarray:
    return posteriors.sample_rho(model, x, 30, seed=seed).mean(-1)[:, 0]


def scores(rho: np.ndarray, smooth: np.ndarray, n_boot: int = 4000) -> dict:
    """Accuracy and Bernoulli NLL with 95% bootstrap intervals over galaxies."""
    rho = np.clip(rho, 1e-6, 1 - 1e-6)
    values = {"accuracy": ((rho > 0.5) == smooth).astype(float),
              "nll": -np.where(smooth, np.log(rho), np.log1p(-rho))}  # fmt: skip
    idx = np.random.default_rng(0).integers(0, len(rho), (n_boot, len(rho)))
    out = {"galaxies": len(rho)}
    for name, v in values.items():
        boots = v[idx].mean(axis=1)
        out[name] = round(float(v.mean()), 4)
        out[f"{name} 95%"] = f"[{np.quantile(boots, 0.025):.3f}, {np.quantile(boots, 0.975):.3f}]"
    return out


def surveys(config: Config, tmp: Path) -> dict:
    return {s: load(s, config.crops[s], config.channels, tmp, config.image_size) for s in SURVEYS}


def measure(names: list[str], n_folds: int, policy: str, tmp: Path) -> list[dict]:
    rows = []
    for name in names:
        config, start = CONFIGS[name], time.perf_counter()
        sets = surveys(config, tmp)
        pools = {s: np.flatnonzero(~kept_out(smooth)) for s, (_, smooth, _) in sets.items()}
        fold = {s: probes.stratified_folds(sets[s][1][p].astype(int), n_folds, 0)
                for s, p in pools.items()}
        rho = {s: np.empty(len(p)) for s, p in pools.items()}
        for f in range(n_folds):
            train = {s: p[fold[s] != f] for s, p in pools.items()}
            x = np.concatenate([sets[s][0][r] for s, r in train.items()])
            y = np.concatenate([sets[s][1][r] for s, r in train.items()])
            model, _ = fine_tune(x, y, config, seed=f, policy=policy)
            for s, p in pools.items():
                test = fold[s] == f
                rho[s][test] = rho_smooth(model, sets[s][0][p[test]], seed=f)
        seconds = round(time.perf_counter() - start)
        for s, p in pools.items():
            row = {"config": name, "survey": s, **scores(rho[s], sets[s][1][p]),
                   "majority": round(max(sets[s][1][p].mean(), 1 - sets[s][1][p].mean()), 3),
                   "seconds": seconds}  # fmt: skip
            rows.append(row)
            print(pd.DataFrame([row]).to_string(index=False, header=len(rows) == 1), flush=True)
    return rows


def starts(n_folds: int, policy: str, tmp: Path, config: Config | None = None) -> list[dict]:
    """Which start is best for a real catalogue the model has not seen? A model fine-tuned on
    the gz2 pool (not kept out) starts notebook-02-style fine-tuning on SDSS folds, against the
    simulated start; out-of-fold SDSS accuracy and NLL of both, and of each start untrained."""
    config = config or CONFIGS["grey"]
    sets = surveys(config, tmp)
    gx, gy, _ = sets["gz2"]
    keep = ~kept_out(gy)
    real_start, _ = fine_tune(gx[keep], gy[keep], config, seed=0, policy=policy)
    zprecision.apply(real_start, "float32")
    real_start.save(tmp / "gz2_start.keras")
    x, smooth, _ = sets["sdss"]
    pool = np.flatnonzero(~kept_out(smooth))
    fold = probes.stratified_folds(smooth[pool].astype(int), n_folds, 0)
    loaders = {
        "simulated": lambda: pretrained.initial_model([QUESTION], 64, config.channels, seed=0)[0],
        "gz2 real": lambda: models.load_model(tmp / "gz2_start.keras"),
    }
    rows = []
    for name, loader in loaders.items():
        untrained = rho_smooth(loader(), x[pool], 0)
        rows.append({"start": name, "fine-tuned on SDSS": "no",
                     **scores(untrained, smooth[pool])})  # fmt: skip
        rho = np.empty(len(pool))
        for f in range(n_folds):
            train, test = pool[fold != f], pool[fold == f]
            model, _ = fine_tune(x[train], smooth[train], config, seed=f, policy=policy,
                                 start=loader)  # fmt: skip
            rho[fold == f] = rho_smooth(model, x[test], f)
        rows.append({"start": name, "fine-tuned on SDSS": f"{n_folds}-fold",
                     **scores(rho, smooth[pool])})  # fmt: skip
        print(pd.DataFrame(rows[-2:]).to_string(index=False), flush=True)
    return rows


def zero_shot(model_loader, config: Config, tmp: Path) -> list[dict]:
    """Accuracy of a model on the kept-out galaxies of each survey, no training."""
    rows = []
    for s, (x, smooth, _) in surveys(config, tmp).items():
        keep = kept_out(smooth)
        rows.append({"survey": s, **scores(rho_smooth(model_loader(), x[keep], 0), smooth[keep])})
    return rows


def train(name: str, out: Path, policy: str, tmp: Path) -> dict:
    """Fine-tune on every galaxy that is not kept out; write the model and its manifest."""
    config = CONFIGS[name]
    sets = surveys(config, tmp)
    pools = {s: ~kept_out(smooth) for s, (_, smooth, _) in sets.items()}
    x = np.concatenate([sets[s][0][p] for s, p in pools.items()])
    y = np.concatenate([sets[s][1][p] for s, p in pools.items()])
    start = time.perf_counter()
    model, history = fine_tune(x, y, config, seed=0, policy=policy)
    seconds = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    model_file = out / "bayesian_cnn_real_64px.keras"
    zprecision.apply(model, "float32")
    clean = models.build_bayesian_cnn(64, config.channels, 1, 0.5, dense_activation="leaky_relu")
    clean.set_weights(model.get_weights())  # without the optimizer's state, as make pretrain
    files.save_model(clean, model_file)
    before = zero_shot(lambda: pretrained.initial_model([QUESTION], 64, config.channels)[0],
                       config, tmp)  # fmt: skip
    after = zero_shot(lambda: models.load_model(model_file), config, tmp)  # as shipped
    source = pretrained.read_manifest()
    manifest = {
        "file": model_file.name, "sha256": files.sha256(model_file),
        "bytes": model_file.stat().st_size,
        "command": f"python experiments/real_model.py train --config {name}",
        "settings": {**asdict(config), "config": name, "precision": policy, "seed": 0},
        "architecture": {**source["architecture"], "channels": config.channels,
                         "questions": [QUESTION]},
        "started_from": {"file": source["file"], "sha256": source["sha256"]},
        "training_images": "real", "crop_fraction": config.crops,
        "data": {s: {"catalog": str(SURVEYS[s][0].relative_to(SHARED)),
                     "catalog_sha256": files.sha256(SURVEYS[s][0]),
                     "trained_on": int(p.sum()), "kept_out": int((~p).sum()),
                     "kept_out_ids": [i for i, k in zip(sets[s][2], ~p, strict=True) if k]}
                 for s, p in pools.items()},
        "epochs_run": len(history["loss"]), "train_seconds": round(seconds),
        "zero_shot_kept_out": {"simulated_start": before, "this_model": after},
    }  # fmt: skip
    files.write_json(out / "manifest.json", manifest)
    cards.ModelCard(
        [QUESTION], 64, config.channels, model_name=model_file.stem, dropout_rate=0.5,
        epochs_run=len(history["loss"]), seed=0, precision=policy, training_images="real",
        crop_fraction=config.crops["sdss"], stretch=images.STRETCH,
        extra={"crop_by_survey": config.crops, "crop_note": crop_note(config.crops),
               "image_formats": ["jpeg"]},
    ).write(model_file)  # fmt: skip
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--folds", type=int, default=3)
    m.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    st = sub.add_parser("starts")
    st.add_argument("--folds", type=int, default=3)
    t = sub.add_parser("train")
    t.add_argument("--config", default="grey", choices=list(CONFIGS))
    t.add_argument("--out", type=Path, default=paths.PROJECT_ROOT / "zoolib" / "pretrained_real")
    args = parser.parse_args()
    policy = zprecision.choose("auto", "train").policy
    with tempfile.TemporaryDirectory() as tmp:
        if args.command == "measure":
            rows = measure(args.configs, args.folds, policy, Path(tmp))
            print(json.dumps(rows))
        elif args.command == "starts":
            print(json.dumps(starts(args.folds, policy, Path(tmp))))
        else:
            manifest = train(args.config, args.out, policy, Path(tmp))
            print(json.dumps({k: v for k, v in manifest.items() if k != "data"}, indent=1))


if __name__ == "__main__":
    main()
