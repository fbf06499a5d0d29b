"""Throughput of ``python -m zoolib predict`` (streamed from image files) against MC dropout on
the same images already in memory.

Usage: python benchmarks/bench_predict.py [--galaxies 2000] [--size 64] [--samples 30]

Writes ``--galaxies`` simulated galaxies as PNG files (at twice the model's size, so decoding
includes a resize, as for real cutouts) with a catalogue into a temporary folder, saves the
paper's CNN (random weights: the cost does not depend on them), then times in this one run
(a) :func:`zoolib.predict.predict_catalog` over the files and (b) ``sample_rho`` plus the same
summaries on the decoded images held in memory. Prints galaxies per second for both and their
ratio: how close streaming from disk comes to the in-memory limit, and the best ratio possible
when the model already keeps every core busy (its CPU time over its CPU time plus decoding's).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--galaxies", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()

    from zoolib import predict
    from zoolib.cnn import models, posteriors
    from zoolib.data import images
    from zoolib.universe import synthetic

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pixels, _ = synthetic.simulate(args.galaxies, size=2 * args.size, seed=0)
        names = []
        for i, img in enumerate(pixels):
            names.append(f"g{i:06d}.png")
            Image.fromarray(img[..., 0]).save(root / names[-1])
        pd.DataFrame({"id_str": [f"{i}" for i in range(len(names))], "file_loc": names}).to_csv(
            root / "catalog.csv", index=False
        )
        model = models.build_bayesian_cnn(args.size, 1, 3, seed=0)
        model.save(root / "model.keras")
        questions = ["smooth-or-featured", "disk-edge-on", "bar"]

        start = time.perf_counter()
        predict.predict_catalog(root / "model.keras", root / "catalog.csv", root / "p.parquet",
                                n_samples=args.samples, progress=False)  # fmt: skip
        streamed = time.perf_counter() - start

        cpu = time.process_time()
        loaded = np.stack([images.load_image(root / f, args.size) for f in names])
        decode_cpu = time.process_time() - cpu  # one thread: CPU time of decoding
        model = models.load_model(root / "model.keras")
        posteriors.sample_rho(model, loaded[:256], args.samples)  # warm-up (tracing)
        start, cpu = time.perf_counter(), time.process_time()
        for b in range(0, len(loaded), 256):
            rho = posteriors.sample_rho(model, loaded[b : b + 256], args.samples, seed=b)
            predict.summarize(rho, questions, 40)
        in_memory = time.perf_counter() - start
        model_cpu = time.process_time() - cpu

    n = args.galaxies
    print(f"{n} galaxies, {args.size} px, T = {args.samples}")
    print(f"  predict from files : {streamed:7.2f} s  {n / streamed:8.0f} galaxies/s")
    print(f"  images in memory   : {in_memory:7.2f} s  {n / in_memory:8.0f} galaxies/s")
    print(f"  ratio (files / in-memory throughput): {in_memory / streamed:.2f}")
    # the model keeps model_cpu / in_memory cores busy; decoding needs decode_cpu more CPU
    # time, so with every core already busy the best possible ratio is model / (model + decode)
    print(
        f"  CPU per galaxy: model {model_cpu / n * 1e3:.2f} ms"
        f" on {model_cpu / in_memory:.2f} cores,"
        f" decoding {decode_cpu / n * 1e3:.2f} ms; best possible ratio on these cores:"
        f" {model_cpu / (model_cpu + decode_cpu):.2f}"
    )


if __name__ == "__main__":
    main()
