"""Which trunk for the real model: the paper's CNN against colour, 96 px and a wider CNN (issue 33).

Usage: python experiments/trunk_choice.py [--epochs 4] [--variants ...] [--out trunk_choice.json]
       python experiments/trunk_choice.py --speed   (predict's cost of every variant, side by side)

Every variant is trained by ``real_trunk.py``'s recipe (SimCLR + multi-task, its data, its
kept-out galaxies, :class:`zoolib.cnn.contrastive.Settings` but for the epochs) for the same
number of epochs, then measured in memory on the yardstick's galaxies
(``yardstick.datasets``, read at the variant's size and channels):

* rings (crop 0.5): linear-probe balanced accuracy with 100 and all training labels (5-fold
  CV), precision@10;
* SDSS smooth/featured zero-shot (the trained head) and with a probe; GZ2 zero-shot;
* CPU cost: training seconds per epoch, and prediction speed (galaxies/s of
  ``posteriors.sample_rho`` with T = 30, as ``predict`` runs it), all in this one run.

A variant starts from the shipped simulated trunk where shapes allow ("simulated": the first
kernel spread over the three bands for colour; the dense layer random at 96 px) or from random
weights ("random"). The file is rewritten after each variant; a rerun skips those done.
Results: ``docs/representations.md``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import real_trunk
import yardstick

from zoolib import files
from zoolib.cnn import contrastive, models, posteriors, pretrained, probes

PAPER = (32, 32, 64, 64, 128, 128)
WIDE = (48, 48, 96, 96, 192, 192)  # 1.5 times as wide: about 2.2 times the arithmetic
VARIANTS = {  # name: (image size, channels, filters, dense units, start)
    "paper grey 64": (64, 1, PAPER, 128, "simulated"),
    "paper colour 64": (64, 3, PAPER, 128, "simulated"),
    "paper grey 96": (96, 1, PAPER, 128, "simulated"),
    "paper grey 64 random start": (64, 1, PAPER, 128, "random"),
    "wide grey 64 random start": (64, 1, WIDE, 192, "random"),
}


def warm_start(trunk: keras.Model) -> int:
    """Copy the shipped simulated trunk's weights into ``trunk`` layer by layer where shapes
    match; a grey first kernel (3, 3, 1, F) is spread over C bands as kernel / C each (a grey
    image then gives the same first activations). Returns how many layers were copied."""
    source = models.split_trunk_head(pretrained.load(64, 1)[0])[0]
    copied = 0
    for layer in trunk.layers:
        if not layer.weights:
            continue
        old = source.get_layer(layer.name).get_weights()
        new = layer.get_weights()
        if layer.name == "conv1" and old[0].shape[2] == 1 and new[0].shape[2] > 1:
            channels = new[0].shape[2]
            old[0] = np.repeat(old[0], channels, axis=2) / channels
        if [w.shape for w in old] == [w.shape for w in new]:
            layer.set_weights(old)
            copied += 1
    return copied


def build(variant: str, seed: int) -> tuple[keras.Model, int]:
    size, channels, filters, dense, start = VARIANTS[variant]
    keras.utils.set_random_seed(seed)
    trunk = models.build_trunk(size, channels, filters, dense, dense_activation="leaky_relu")
    return trunk, warm_start(trunk) if start == "simulated" else 0


def training_data(size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """real_trunk.py's images and class-balanced votes at this size and channels."""
    with tempfile.TemporaryDirectory() as tmp:
        return real_trunk.stacked(real_trunk.load(Path(tmp), size, channels))


def speed(model: keras.Model, images: np.ndarray) -> float:
    """Galaxies per second of predict's sampler (T = 30), after one warm-up batch."""
    posteriors.sample_rho(model, images[:256], 30, seed=0)
    start = time.perf_counter()
    posteriors.sample_rho(model, images, 30, seed=0)
    return len(images) / (time.perf_counter() - start)


def speeds(variants, galaxies: int = 2048, repeats: int = 3) -> dict:
    """{variant: galaxies/s} of predict's sampler on random images, every variant in this one
    run, alternately, best of ``repeats`` (the weights do not change the cost)."""
    rng = np.random.default_rng(0)
    models_ = {}
    for v in variants:
        trunk, _ = build(v, 0)
        head = models.build_head(trunk.output_shape[-1], 2, seed=0)
        inputs = keras.Input(trunk.input_shape[1:], name="image")
        models_[v] = (keras.Model(inputs, head(trunk(inputs))),
                      rng.integers(0, 256, (galaxies,) + trunk.input_shape[1:], np.uint8))
    best = {v: 0.0 for v in variants}
    for _ in range(repeats):
        for v, (model, x) in models_.items():
            best[v] = max(best[v], speed(model, x))
    return best


def measure(model: keras.Model, data: dict) -> list[dict]:
    trunk = model.get_layer("trunk")
    rows = []
    x, labels = data["rings crop 0.5"]
    f = posteriors.trunk_features(model, x)
    curve = probes.learning_curve(f, labels["ring"], (100, probes.ALL), 5)
    rows += [{"task": "ring probe", **r} for r in curve.to_dict("records")]
    rows.append({"task": "ring precision@10",
                 **yardstick.neighbours(probes.precision_at_k(f, labels["ring"], 10))})
    for name in ("sdss", "gz2"):
        x, labels = data[name]
        rho = posteriors.sample_rho(model, x, 30, seed=0).mean(-1)[:, 0]
        rows.append({"task": f"{name} smooth zero-shot", "labels": 0,
                     **probes.scores(np.stack([1 - rho, rho], 1), labels["smooth"])})
        if name == "sdss":
            f = posteriors.trunk_features(model, x)
            curve = probes.learning_curve(f, labels["smooth"], (probes.ALL,), 5)
            rows.append({"task": "sdss smooth probe", **curve.iloc[0].to_dict()})
            rows.append({"task": "predict speed", "labels": "-",
                         "value": speed(model, x), "parameters": trunk.count_params()})
    return rows


COLUMNS = [("ring probe", 100), ("ring probe", "all"), ("ring precision@10", "-"),
           ("sdss smooth zero-shot", 0), ("sdss smooth probe", "all"),
           ("gz2 smooth zero-shot", 0)]  # fmt: skip


def markdown(rows: list[dict]) -> str:
    """docs/representations.md's table: a row per variant, balanced accuracy [95%] per column
    (precision@10 for neighbours), then the trunk's parameters. (Seconds per epoch and speed
    are in the file; they are only comparable when nothing else ran, hence ``--speed``.)"""
    head = ["rings probe 100", "rings probe all", "rings p@10", "SDSS zero-shot", "SDSS probe",
            "GZ2 zero-shot", "trunk parameters"]
    lines = ["| variant | " + " | ".join(head) + " |", "| --- " * (len(head) + 1) + "|"]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = {(r["task"], r["labels"]): r for r in rows if r["variant"] == variant}
        cells = [yardstick.cell(mine[c], "value" if c[0].endswith("@10") else "balanced accuracy")
                 for c in COLUMNS]  # fmt: skip
        cells.append(f"{mine[('predict speed', '-')]['parameters']:,}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("trunk_choice.json"))
    parser.add_argument("--table", action="store_true", help="print --out's table, measure nothing")
    parser.add_argument("--speed", action="store_true",
                        help="only time predict's sampler for every variant, side by side")
    args = parser.parse_args()
    if args.table:
        print(markdown(json.loads(args.out.read_text())["rows"]))
        return
    if args.speed:
        result = speeds(args.variants)
        base = result.get("paper grey 64")
        for v, gps in result.items():
            ratio = f", {gps / base:.2f}x the paper's grey 64 px CNN" if base else ""
            print(f"{v}: {gps:.0f} galaxies/s (T = 30){ratio}")
        return
    done = json.loads(args.out.read_text())["rows"] if args.out.is_file() else []
    settings = replace(contrastive.Settings(), epochs=args.epochs)
    cache: dict = {}
    for variant in args.variants:
        if any(r["variant"] == variant for r in done):
            print(f"{variant}: done, skipped", flush=True)
            continue
        size, channels = VARIANTS[variant][:2]
        if (size, channels) not in cache:
            with tempfile.TemporaryDirectory() as tmp:
                cache = {(size, channels): (training_data(size, channels),
                                            yardstick.datasets(Path(tmp), [0.5], size, channels))}
        (x, votes), data = cache[(size, channels)]
        trunk, copied = build(variant, settings.seed)
        print(f"{variant}: {trunk.count_params()} trunk parameters, {copied} layers warm-started, "
              f"{len(x)} images", flush=True)  # fmt: skip
        head, history = contrastive.train(trunk, x, votes, settings)
        inputs = keras.Input(trunk.input_shape[1:], name="image")
        model = keras.Model(inputs, head(trunk(inputs)))
        base = {"variant": variant, "epochs": settings.epochs, "layers warm-started": copied,
                "seconds per epoch": float(np.mean(history["seconds"]))}  # fmt: skip
        done += [{**base, **r} for r in measure(model, data)]
        files.write_json(args.out, {"rows": done, "settings": str(settings)})
        for r in done[-7:]:
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                   if k in ("task", "labels", "balanced accuracy", "value")}, flush=True)


if __name__ == "__main__":
    main()
