"""Throughput of the synthetic universe: python benchmarks/bench_synthetic.py [--galaxies N].

Target (issue 3): 20,000 galaxies at 64 px in under 30 s on a 2-core machine. Prints the time
for latents + votes and for rendering, greyscale and RGB, and galaxies per second.
"""

from __future__ import annotations

import argparse
import time

from zoolib.universe import synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--galaxies", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    synthetic.simulate(300, args.size)  # warm-up
    for channels in (1, 3):
        start = time.perf_counter()
        images, catalog = synthetic.simulate(args.galaxies, args.size, channels, seed=1)
        took = time.perf_counter() - start
        print(
            f"simulate {args.galaxies:,} galaxies at {args.size} px, {channels} channel(s): "
            f"{took:6.2f} s = {args.galaxies / took:8,.0f} galaxies/s "
            f"(images {images.nbytes / 2**20:.0f} MiB, target < 30 s for 20,000 greyscale)"
        )


if __name__ == "__main__":
    main()
