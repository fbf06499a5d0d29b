"""Throughput of zoolib.active.acquisition.mutual_information against a straightforward scipy loop.

Usage: python benchmarks/bench_bald.py [--galaxies 200000] [--samples 30] [--votes 40]

Measures, all in this one run so that the ratios compare like with like on a busy machine:

* the default path of ``mutual_information`` (the multiplicative recurrence for
  1 <= n <= ``acquisition.RECURRENCE_MAX_N``),
* the exact log-table path on the same input with its former chunk size, which is what
  ``mutual_information`` did before the recurrence (it remains the fallback for other n and
  for near-zero scores),
* a straightforward scipy.stats loop, one galaxy at a time, on the first galaxies.

The two vectorised paths are timed alternately, ``--repeats`` times each, and the best time of
each is reported, with the process CPU time of the best call (close to the wall time on a quiet
machine; on a busy one the wall time is longer, while CPU time also counts any spinning BLAS
threads). Prints galaxies per second, the ratios, the peak memory traced during one call of
each path (a separate call, so tracing does not slow the timed ones), the largest absolute
difference from the scipy loop on the galaxies it scored, and whether the default path reaches
the ``--target`` throughput in wall time.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from scipy import stats

from zoolib.active import acquisition
from zoolib.active.acquisition import mutual_information
from zoolib.votes.binomial import CHUNK_ELEMENTS


def reference_mi(rho_row: np.ndarray, n: int) -> float:
    """One galaxy at a time with scipy.stats, as one would first write it."""
    ks = np.arange(n + 1)
    pmfs = stats.binom.pmf(ks[None, :], n, rho_row[:, None])
    return stats.entropy(pmfs.mean(axis=0)) - np.mean([stats.entropy(p) for p in pmfs])


def exact_path_mi(rho: np.ndarray, n: int) -> np.ndarray:
    """mutual_information as it was before the recurrence: exact path, its 2**17 chunks."""
    pred, expected = acquisition.entropies(rho, n, CHUNK_ELEMENTS, recurrence=False)
    mi = pred - expected
    mi[(mi < 0) & (mi >= -acquisition.MI_ROUNDING)] = 0.0
    return mi


def peak_mib(fn, *args) -> float:
    """Peak memory traced by tracemalloc during one call of fn(*args), in MiB."""
    tracemalloc.start()
    fn(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--galaxies", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--votes", type=int, default=40)
    parser.add_argument("--reference-galaxies", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each path")
    parser.add_argument("--target", type=float, default=200_000, help="galaxies/s to reach")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    rho = rng.beta(0.8, 0.8, size=(args.galaxies, args.samples))
    paths = {"default": mutual_information, "exact": exact_path_mi}

    for fn in paths.values():  # warm-up
        fn(rho[:1000], args.votes)
    best = dict.fromkeys(paths, np.inf)
    cpu = dict.fromkeys(paths, np.inf)
    results = {}
    for _ in range(args.repeats):  # alternate, so both paths see the same load
        for name, fn in paths.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            results[name] = fn(rho, args.votes)
            best[name] = min(best[name], time.perf_counter() - start)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
    peaks = {name: peak_mib(fn, rho, args.votes) for name, fn in paths.items()}

    m = min(args.reference_galaxies, args.galaxies)
    start = time.perf_counter()
    ref = np.array([reference_mi(rho[i], args.votes) for i in range(m)])
    ref_s = time.perf_counter() - start

    rates = {name: args.galaxies / s for name, s in best.items()}
    ref_rate = m / ref_s
    labels = {"default": "zoolib default", "exact": "zoolib exact path"}
    input_mib = rho.nbytes / 2**20
    print(f"mutual_information: {args.galaxies:,} galaxies, T={args.samples}, n={args.votes}")
    print(f"  (best of {args.repeats} alternating calls per path; input {input_mib:.1f} MiB)")
    for name in paths:
        print(
            f"  {labels[name]:18s}: {best[name]:8.2f} s  {rates[name]:12,.0f} galaxies/s  "
            f"{rates[name] / ref_rate:8.1f}x scipy  peak {peaks[name]:6.1f} MiB  "
            f"max |MI - ref| {np.max(np.abs(results[name][:m] - ref)):.2e} nats"
        )
        per_cpu_s = args.galaxies / cpu[name]
        print(f"  {'':18s}  (CPU time {cpu[name]:.2f} s: {per_cpu_s:,.0f} galaxies per CPU-s)")
    print(f"  {'scipy per galaxy':18s}: {ref_s:8.2f} s  {ref_rate:12,.0f} galaxies/s  (on {m:,})")
    print(f"  default / exact   : {rates['default'] / rates['exact']:8.2f}x")
    print(f"  max |default - exact| : {np.max(np.abs(results['default'] - results['exact'])):.2e}")
    verdict = "PASS" if rates["default"] >= args.target else "FAIL"
    print(f"  target {args.target:,.0f} galaxies/s: {verdict} ({rates['default']:,.0f})")


if __name__ == "__main__":
    main()
