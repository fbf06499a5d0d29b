"""Cost of an MC-dropout posterior against one deterministic pass of the paper's CNN.

Usage: python benchmarks/bench_mc_dropout.py [--size 64] [--samples 30] [--images 1024]
       [--repeats 3] [--naive-images 32] [--batch-size 256] [--check]

Target (issue 6): drawing T = 30 samples with ``zoolib.cnn.posteriors.sample_rho`` takes at most
1.2 times as long as one deterministic pass over the same images, because the deterministic
trunk runs once per batch and only the small head is evaluated T times (in one vectorised call).
The naive method, T full stochastic forward passes, costs about T times a deterministic pass.

The script builds ``build_bayesian_cnn`` (random weights) at ``--size`` px, makes ``--images``
random uint8 images, warms every method up (tracing, thread pools) and then times, in the same
run:

* deterministic: one compiled pass of the network without its dropout layers (the network of
  ``deterministic_rho``, wrapped in ``tf.function``), uint8 batch in, float64 rho out;
* fast: ``sample_rho(model, batch, T)``, uint8 batch in, float64 rho samples out;
* naive: T compiled full forward passes of the model with MC dropout on, on the first
  ``--naive-images`` images only (it is T times slower), against a deterministic pass over
  those same images, so that both run at the same batch size.

Other processes' load changes from second to second, so the methods are interleaved batch by
batch (``--batch-size`` images, alternating which goes first) rather than pass by pass; a round
is one pass of each method over its images. Per round, the ratio of time per image of each
method to the deterministic pass is taken; the medians over ``--repeats`` rounds of the seconds,
images/s and these ratios are printed, with pass/fail for the 1.2x target (``--check`` exits
with status 1 when it is missed). The public ``deterministic_rho``, which runs eagerly, is
timed once for information. The defaults take about a minute on 2 idle cores; ``--images 4096
--repeats 5`` gives steadier numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from zoolib.cnn import posteriors  # noqa: E402
from zoolib.cnn.models import MCDropout, build_bayesian_cnn  # noqa: E402

TARGET = 1.2  # fast / deterministic, time per image


def without_dropout(model: keras.Model) -> keras.Model:
    """The model with its MCDropout layers replaced by identities, sharing all weights."""

    def share_or_skip(layer):
        return keras.layers.Identity() if isinstance(layer, MCDropout) else layer

    return keras.models.clone_model(model, clone_function=share_or_skip, recursive=True)


def interleaved(pair, images, batch_size: int, flip: bool) -> list[float]:
    """Seconds each of two functions takes over ``images``, alternating them batch by batch."""
    seconds = [0.0, 0.0]
    for i, start in enumerate(range(0, len(images), batch_size)):
        batch = images[start : start + batch_size]
        for j in (0, 1) if (i + flip) % 2 == 0 else (1, 0):
            begin = time.perf_counter()
            pair[j](batch)
            seconds[j] += time.perf_counter() - begin
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--samples", type=int, default=30, help="T, dropout masks per galaxy")
    parser.add_argument("--images", type=int, default=1024, help="images per timed pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median is kept)")
    parser.add_argument(
        "--naive-images", type=int, default=32, help="images for the T-full-passes method"
    )
    parser.add_argument("--batch-size", type=int, default=256, help="as sample_rho's default")
    parser.add_argument("--questions", type=int, default=3, help="Q, outputs of the head")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args()

    t, bs = args.samples, args.batch_size
    model = build_bayesian_cnn(args.size, n_questions=args.questions, seed=0)
    plain = without_dropout(model)
    shape = (args.images, args.size, args.size, 1)
    images = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    naive_images = images[: min(args.naive_images, args.images)]

    single = tf.function(lambda x: plain(x, training=False), reduce_retracing=True)
    stochastic = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def deterministic(batch):
        return posteriors.to_rho(single(tf.constant(batch, tf.float32)))

    def fast(batch):
        return posteriors.sample_rho(model, batch, t, batch_size=bs)

    def naive(batch):
        x = tf.constant(batch, tf.float32)
        return np.stack([posteriors.to_rho(stochastic(x)) for _ in range(t)], axis=-1)

    for fn in (deterministic, fast):  # warm-up: a full and a short batch, both shapes traced
        for start in (0, bs):
            fn(images[start : start + bs][: bs - 1 if start else bs])
    for fn in (deterministic, naive):
        fn(naive_images)

    seconds = {"deterministic": [], "fast": [], "det_subset": [], "naive": []}
    for r in range(args.repeats):
        det_s, fast_s = interleaved((deterministic, fast), images, bs, flip=r % 2 == 1)
        sub_s, naive_s = interleaved((deterministic, naive), naive_images, bs, flip=r % 2 == 1)
        for name, s in zip(seconds, (det_s, fast_s, sub_s, naive_s), strict=True):
            seconds[name].append(s)
    start = time.perf_counter()
    posteriors.deterministic_rho(model, images, batch_size=bs)
    eager_s = time.perf_counter() - start

    def ratios(name, base):  # time per image against the deterministic pass, per round
        return [a / b for a, b in zip(seconds[name], seconds[base], strict=True)]

    fast_ratios = ratios("fast", "deterministic")
    fast_ratio = statistics.median(fast_ratios)
    naive_ratio = statistics.median(ratios("naive", "det_subset"))
    print(
        f"MC dropout at {args.size} px, T = {t}, batch {bs}, {args.images:,} random images; "
        f"median of {args.repeats} rounds after warm-up, methods interleaved batch by batch"
    )
    rows = [
        ("deterministic, 1 pass", "deterministic", len(images), 1.0),
        (f"sample_rho, T = {t}", "fast", len(images), fast_ratio),
        ("deterministic, 1 pass", "det_subset", len(naive_images), 1.0),
        (f"naive, {t} full passes", "naive", len(naive_images), naive_ratio),
    ]
    for label, name, n, ratio in rows:
        s = statistics.median(seconds[name])
        print(
            f"  {label:<24}: {s:7.2f} s for {n:5,} images = {n / s:8,.1f} images/s   "
            f"x{ratio:6.2f} of deterministic"
        )
    print(
        f"  {'deterministic_rho, eager':<24}: {eager_s:7.2f} s for {len(images):5,} images = "
        f"{len(images) / eager_s:8,.1f} images/s   (timed once, for information)"
    )
    met = fast_ratio <= TARGET
    print(
        f"  fast / deterministic = {fast_ratio:.3f} (per round: "
        f"{', '.join(f'{r:.3f}' for r in fast_ratios)}; target <= {TARGET}): "
        f"{'PASS' if met else 'FAIL'}"
    )
    print(
        f"  naive / deterministic = {naive_ratio:.1f} (T = {t}); "
        f"fast is {naive_ratio / fast_ratio:.1f}x faster than naive"
    )
    if args.check and not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
