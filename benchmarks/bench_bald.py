"""Throughput of zoolib.acquisition.mutual_information against a straightforward scipy loop.

Usage: python benchmarks/bench_bald.py [--galaxies 200000] [--samples 30] [--votes 40]

Prints galaxies per second for both, measured in this one run, their ratio, the peak memory
traced during the vectorised call, and the largest absolute difference between the two on the
galaxies the reference scored.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from scipy import stats

from zoolib.acquisition import mutual_information


def reference_mi(rho_row: np.ndarray, n: int) -> float:
    """One galaxy at a time with scipy.stats, as one would first write it."""
    ks = np.arange(n + 1)
    pmfs = stats.binom.pmf(ks[None, :], n, rho_row[:, None])
    return stats.entropy(pmfs.mean(axis=0)) - np.mean([stats.entropy(p) for p in pmfs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--galaxies", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--votes", type=int, default=40)
    parser.add_argument("--reference-galaxies", type=int, default=2_000)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    rho = rng.beta(0.8, 0.8, size=(args.galaxies, args.samples))

    mutual_information(rho[:1000], args.votes)  # warm-up
    tracemalloc.start()
    start = time.perf_counter()
    mi = mutual_information(rho, args.votes)
    fast_s = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    m = min(args.reference_galaxies, args.galaxies)
    start = time.perf_counter()
    ref = np.array([reference_mi(rho[i], args.votes) for i in range(m)])
    ref_s = time.perf_counter() - start

    fast_rate, ref_rate = args.galaxies / fast_s, m / ref_s
    input_mb = rho.nbytes / 2**20
    print(f"mutual_information: {args.galaxies:,} galaxies, T={args.samples}, n={args.votes}")
    print(f"  zoolib vectorised : {fast_s:8.2f} s  {fast_rate:12,.0f} galaxies/s")
    print(f"  scipy per galaxy  : {ref_s:8.2f} s  {ref_rate:12,.0f} galaxies/s  (on {m:,})")
    print(f"  speed-up ratio    : {fast_rate / ref_rate:8.1f}x")
    print(f"  peak traced memory: {peak / 2**20:8.1f} MiB (input array itself {input_mb:.1f} MiB)")
    print(f"  max |MI - ref|    : {np.max(np.abs(mi[:m] - ref)):.2e} nats")


if __name__ == "__main__":
    main()
