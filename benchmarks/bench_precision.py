"""Training and MC-dropout prediction throughput in float32 and mixed_bfloat16, side by side.

Usage: python benchmarks/bench_precision.py [--images 2048] [--size 64] [--batch-size 64]
       [--samples 30] [--repeats 4]

Target (issue 21): on a machine with bfloat16 units, training and MC-dropout prediction at least
3x faster in mixed_bfloat16 than in float32, measured in the same run; on a machine without
them, ``auto`` keeps float32 (printed last, with the reason).

What is timed, for each precision (``zoolib.cnn.precision.apply`` on the paper's CNN,
``zoolib.cnn.models.build_bayesian_cnn(size, 1, 3)``, leaky-ReLU trunk as shipped):

* training: one epoch of ``model.fit`` on ``--images`` simulated galaxies through the project's
  input pipeline (``zoolib.data.pipeline.make_tf_dataset``: shuffled, augmented), Adam on
  ``BinomialLoss``, batch ``--batch-size``, compiled as ``zoolib.cnn.training.train`` compiles it
  (timed from ``on_epoch_begin`` to ``on_epoch_end``);
* prediction: ``zoolib.cnn.posteriors.sample_rho`` with T = ``--samples`` on the same images in
  batches of 256 (the trunk once, T masks on the head: what notebooks 02-04 and ``predict`` do).

Both models are warmed up (a traced step, a traced batch) first. Each round then times the two
precisions one after the other, alternating which goes first; the ratio bf16/f32 is taken
within each round (so a slow moment of a shared machine hits both sides of a ratio alike) and
its median over ``--repeats`` rounds is printed beside every round's ratio. The defaults take
about four minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from _timing import EpochTimer  # noqa: E402  (benchmarks/, this script's folder)

from zoolib.cnn import models, posteriors, precision  # noqa: E402
from zoolib.cnn.losses import BinomialLoss  # noqa: E402
from zoolib.data import pipeline, processed  # noqa: E402
from zoolib.universe import synthetic  # noqa: E402
from zoolib.votes.schema import QUESTIONS  # noqa: E402

TARGET = 3.0
POLICIES = (precision.FLOAT32, precision.BFLOAT16)


def build(policy: str, size: int) -> keras.Model:
    model = models.build_bayesian_cnn(size, 1, 3, seed=0, dense_activation="leaky_relu")
    precision.apply(model, policy)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=BinomialLoss())
    return model


def train_rate(model, ds, n_images: int) -> float:
    timer = EpochTimer()
    model.fit(ds, epochs=1, verbose=0, callbacks=[timer])
    return n_images / timer.seconds[-1]


def predict_rate(model, images, samples: int) -> float:
    start = time.perf_counter()
    posteriors.sample_rho(model, images, samples, seed=0)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()

    units = precision.native_units()
    print(f"CPU: {precision.cpu_model()}, {os.cpu_count()} cores; bfloat16 units: {units}")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; paper's CNN at {args.size} px")
    images, catalog = synthetic.simulate(args.images, args.size, seed=0)
    votes = processed.votes_array(catalog, list(QUESTIONS))
    ds = pipeline.make_tf_dataset(images, votes, args.batch_size, seed=0)
    nets = {p: build(p, args.size) for p in POLICIES}
    for model in nets.values():  # warm-up: trace the train step and the sampler
        model.fit(ds.take(2), epochs=1, verbose=0)
        posteriors.sample_rho(model, images[:256], args.samples, seed=0)
    rates = {(task, p): [] for task in ("train", "predict") for p in POLICIES}
    for r in range(args.repeats):
        order = POLICIES if r % 2 == 0 else POLICIES[::-1]
        for p in order:
            rates[("train", p)].append(train_rate(nets[p], ds, args.images))
        for p in order:
            rates[("predict", p)].append(predict_rate(nets[p], images, args.samples))
    print(f"\n{'':28s} {'float32':>10s} {'bfloat16':>10s} {'ratio':>7s}   rounds")
    for task, what in (("train", f"training, batch {args.batch_size}, img/s"),
                       ("predict", f"MC dropout T={args.samples}, img/s")):  # fmt: skip
        f32, b16 = rates[(task, POLICIES[0])], rates[(task, POLICIES[1])]
        ratios = [b / f for b, f in zip(b16, f32, strict=True)]
        median = statistics.median(ratios)
        verdict = "meets" if median >= TARGET else "misses"
        print(f"{what:28s} {statistics.median(f32):10.0f} {statistics.median(b16):10.0f} "
              f"{median:6.2f}x   {' '.join(f'{v:.2f}' for v in ratios)}  "
              f"({verdict} the {TARGET:.0f}x target)")  # fmt: skip
    for task in precision.TASKS:
        print(precision.choose(precision.AUTO, task))


if __name__ == "__main__":
    main()
