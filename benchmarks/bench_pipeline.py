"""Training throughput with the real input pipeline against the same batches held in memory.

Usage: python benchmarks/bench_pipeline.py [--sizes 32 64] [--images 2000] [--batch-size 64]
       [--repeats 3] [--check]

Target (issue 6): images/s in ``model.fit`` with the pipeline of
``zoolib.data.pipeline.make_tf_dataset`` (memory-mapped uint8 images read one batch at a time,
shuffled, augmented) is at least 95% of images/s when the same batches are already in memory, i.e.
the pipeline keeps the model fed.

For each image size the script simulates ``--images`` galaxies (``zoolib.universe.synthetic``),
saves them as ``.npy`` and memory-maps them, as ``zoolib.data.processed.load_processed`` does, and
builds the paper's CNN compiled as ``zoolib.cnn.training.train`` compiles it (Adam,
``BinomialLoss``). The "memory" dataset is one epoch of the pipeline materialised into tensors and
re-batched identically (``from_tensor_slices(...).batch(...).cache()``), so both feed the same
model the same number of steps of the same shapes. After a warm-up (materialising runs the pipeline
once, the cache is filled, two steps trace the train step), each round fits one epoch on each,
in alternating order; an epoch is timed from ``on_epoch_begin`` to ``on_epoch_end`` (so the
pipeline's start-up each epoch is included). The ratio pipeline/memory of images/s is taken
within each round and its median over ``--repeats`` rounds is reported with pass/fail against
95%, beside the ratio of CPU seconds per epoch (all threads of this process), which other
processes' load disturbs far less than wall time (on a CPU-only machine, what the pipeline
costs is the CPU it takes from training). Last, one epoch of the pipeline alone (no training)
is timed in CPU seconds, its own cost against that of training. ``--check`` exits with status 1
when a size misses the target. The defaults take about three minutes on 2 idle cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _timing import EpochTimer  # noqa: E402  (benchmarks/, this script's folder)

from zoolib.cnn.losses import BinomialLoss  # noqa: E402
from zoolib.cnn.models import build_bayesian_cnn  # noqa: E402
from zoolib.data import pipeline, processed  # noqa: E402
from zoolib.universe import synthetic  # noqa: E402

TARGET = 0.95  # pipeline images/s over in-memory images/s


def in_memory(ds: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """One epoch of ``ds`` materialised and re-batched identically, served from memory."""
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
    mem = tf.data.Dataset.from_tensor_slices((np.concatenate(xs), np.concatenate(ys)))
    return mem.batch(batch_size).cache().prefetch(tf.data.AUTOTUNE)


def bench_size(size: int, args, folder: Path) -> float:
    images, catalog = synthetic.simulate(args.images, size, seed=0)
    np.save(folder / f"images{size}.npy", images)
    images = np.load(folder / f"images{size}.npy", mmap_mode="r")
    questions = processed.questions_in(catalog)
    votes = processed.votes_array(catalog, questions)
    streamed = pipeline.make_tf_dataset(images, votes, args.batch_size, seed=0)
    memory = in_memory(streamed, args.batch_size)
    steps = -(-args.images // args.batch_size)

    model = build_bayesian_cnn(size, 1, len(questions), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=BinomialLoss())
    for _ in memory:  # fill the cache (the pipeline already ran one epoch to materialise)
        pass
    model.fit(memory.take(2), epochs=1, verbose=0, shuffle=False)  # traces the train step
    datasets = {"pipeline": streamed, "memory": memory}
    timers = {name: EpochTimer() for name in datasets}
    for r in range(args.repeats):  # every other round in reverse order, to cancel drifts
        for name in list(datasets)[:: 1 if r % 2 == 0 else -1]:
            callbacks = [timers[name]]
            model.fit(datasets[name], epochs=1, callbacks=callbacks, verbose=0, shuffle=False)
    # throughput ratio within each round (epochs seconds apart, under the same outside load)
    wall = {name: timers[name].seconds for name in datasets}
    cpu = {name: timers[name].cpu_seconds for name in datasets}
    rounds = [m / p for p, m in zip(wall["pipeline"], wall["memory"], strict=True)]
    ratio = statistics.median(rounds)
    print(
        f"{size} px, {args.images:,} images, batch {args.batch_size}, {steps} steps/epoch; "
        f"median of {args.repeats} epochs each, after warm-up"
    )
    for name in datasets:
        s, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(
            f"  {name:<8}: {s:7.2f} s/epoch = {args.images / s:8,.1f} images/s "
            f"({c:6.2f} CPU s/epoch)"
        )
    cpu_ratio = statistics.median(cpu["memory"]) / statistics.median(cpu["pipeline"])
    alone = []  # the pipeline's own cost: one epoch of it without training
    for _ in range(3):
        start = time.process_time()
        for _ in pipeline:
            pass
        alone.append(time.process_time() - start)
    alone_cpu, train_cpu = statistics.median(alone), statistics.median(cpu["memory"])
    print(
        f"  pipeline / memory throughput = {ratio:.3f} (per round: "
        f"{', '.join(f'{r:.3f}' for r in rounds)}; target >= {TARGET}): "
        f"{'PASS' if ratio >= TARGET else 'FAIL'}"
    )
    print(f"  memory / pipeline CPU seconds per epoch = {cpu_ratio:.3f} (steadier under load)")
    print(
        f"  the pipeline alone: {alone_cpu:.3f} CPU s/epoch = {alone_cpu / train_cpu:.1%} of the "
        "CPU of an epoch of training from memory"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs of each (median)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ratios = [bench_size(size, args, Path(tmp)) for size in args.sizes]
    if args.check and min(ratios) < TARGET:
        sys.exit(1)


if __name__ == "__main__":
    main()
