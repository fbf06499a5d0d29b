"""Cost of the multi-worker training loop, and two local workers against one process.

Usage: python benchmarks/bench_distributed.py [--size 32] [--images 2048] [--batch-size 64]
       [--epochs 3] [--rounds 3]

``zoolib.cnn.training.train`` runs Keras ``fit`` on one machine and its own ``tf.distribute`` loop
under MultiWorkerMirroredStrategy (``fit`` fails there with the pinned Keras). This script
prints, measured side by side in one run:

1. **Loop overhead.** Images/s of the custom loop against ``fit`` on one device, same model,
   data and seeds, with each loop's epochs timed from ``on_epoch_begin`` to ``on_epoch_end``
   (the first epoch, which traces the step functions, is left out; median of the others).
   Fit and custom trainings alternate over ``--rounds`` rounds; the ratio is taken within
   each round and its median reported, beside the ratio of images per CPU second.
   The custom loop makes three small calls per step (global batch size, step, loss sum),
   each of which waits for its result; on a cluster, the distributed iterator adds a small
   all-reduce of its own each step.
2. **Two workers on this machine.** The same training as two MultiWorkerMirroredStrategy
   workers on localhost (one thread each, each reading its half of every batch through
   ``pipeline.dataset_fn``) against one process with two threads: images/s of the cluster over
   images/s of the single process. On one machine this measures the cost of the gRPC
   all-reduce and of splitting the work, not a speed-up: both use the same 2 cores.

No target is set by the issue; the figures are for docs/performance.md. The defaults take about
four minutes on 2 idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# (importing Keras does not start TensorFlow: a worker can still set TF_CONFIG later)
from _timing import EpochTimer  # noqa: E402  (benchmarks/, this script's folder)


def simulate(args):
    from zoolib.data import processed
    from zoolib.universe import synthetic

    images, catalog = synthetic.simulate(args.images, args.size, seed=0)
    return images, processed.votes_array(catalog, processed.questions_in(catalog))


def train(args, train_data, loop: str) -> tuple[float, float]:
    """Median images/s and images per CPU second over the epochs after the first."""
    from zoolib.cnn import models, training

    timer = EpochTimer()
    q = args.questions
    training.train(
        lambda: models.build_bayesian_cnn(args.size, 1, q, seed=0), train_data, None,
        epochs=args.epochs, seed=0, loop=loop, callbacks=[timer],
    )  # fmt: skip
    wall, cpu = (statistics.median(t[1:]) for t in (timer.seconds, timer.cpu_seconds))
    return args.images / wall, args.images / cpu


def worker(args) -> None:
    """One process of part 2 (cluster worker, or the single process when --ports is empty)."""
    if args.ports:
        os.environ["TF_CONFIG"] = json.dumps(
            {
                "cluster": {"worker": [f"localhost:{p}" for p in args.ports.split(",")]},
                "task": {"type": "worker", "index": args.worker},
            }
        )
    import tensorflow as tf

    threads = 1 if args.ports else 2
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if args.ports else None
    from zoolib.data import pipeline

    images, votes = simulate(args)
    args.questions = votes.shape[1]
    fn = pipeline.dataset_fn(images, votes, args.batch_size, seed=0)
    if strategy is None:
        rate, _ = train(args, fn, "custom")
    else:
        with strategy.scope():
            rate, _ = train(args, fn, "custom")
    print(json.dumps({"images_per_s": rate}))


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def run_processes(args, cluster: bool) -> float:
    """Images/s of a 2-worker cluster (or of one process), from the chief's report."""
    ports = ",".join(map(str, free_ports(2))) if cluster else ""
    common = [sys.executable, __file__, "--size", str(args.size), "--images", str(args.images),
              "--batch-size", str(args.batch_size), "--epochs", str(args.epochs),
              "--ports", ports]  # fmt: skip
    procs = []
    try:
        for i in range(2 if cluster else 1):
            procs.append(
                subprocess.Popen([*common, "--worker", str(i)], stdout=subprocess.PIPE, text=True)
            )
        outs = [proc.communicate(timeout=1800)[0] for proc in procs]
    finally:  # a worker left waiting for a failed peer would otherwise block forever
        for proc in procs:
            proc.kill()
            proc.wait()
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"a worker failed: {[proc.returncode for proc in procs]}")
    return json.loads(outs[0].strip().splitlines()[-1])["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="the first one is not timed")
    parser.add_argument("--rounds", type=int, default=3, help="fit/custom pairs (median)")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args)
        return
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is not timed)")

    from zoolib.data import pipeline

    images, votes = simulate(args)
    args.questions = votes.shape[1]
    print(
        f"{args.size} px, {args.images:,} images, global batch {args.batch_size}, "
        f"median of epochs 2..{args.epochs} of each training, {args.rounds} rounds"
    )
    ratios, cpu_ratios = [], []
    for r in range(args.rounds):  # fit and custom alternate, to cancel drifts in outside load
        rates = {}
        for loop in ("fit", "custom")[:: 1 if r % 2 == 0 else -1]:
            ds = pipeline.make_tf_dataset(images, votes, args.batch_size, seed=0)
            rates[loop] = train(args, ds, loop)
        ratios.append(rates["custom"][0] / rates["fit"][0])
        cpu_ratios.append(rates["custom"][1] / rates["fit"][1])
        print(
            f"  round {r + 1}: one device, fit {rates['fit'][0]:7,.1f} images/s, "
            f"custom loop {rates['custom'][0]:7,.1f} images/s"
        )
    print(
        f"  custom loop / fit images/s = {statistics.median(ratios):.3f} (per round: "
        f"{', '.join(f'{x:.3f}' for x in ratios)}); per CPU second: "
        f"{statistics.median(cpu_ratios):.3f}"
    )
    single = run_processes(args, cluster=False)
    cluster = run_processes(args, cluster=True)
    print(f"  one process, 2 threads, custom loop : {single:8,.1f} images/s")
    print(f"  two local workers, 1 thread each    : {cluster:8,.1f} images/s")
    print(f"  two workers / one process = {cluster / single:.3f}")


if __name__ == "__main__":
    main()
