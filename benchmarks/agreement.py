"""Agreement measures on synthetic rooms: how long every clustering measure of one pair takes as rooms grow.

Two annotators label n turns with n/20 threads; the second copies the first on 80% of the turns and picks a
random thread otherwise (noise that links many threads: a worst case for one-to-one's matching). No database.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/agreement.py            # n = 10,000 and 100,000
    BENCH_TURNS=1000000 .venv/bin/python benchmarks/agreement.py
"""

from __future__ import annotations

import os
import random
import time

from annotation_platform.agreement import metrics


def main() -> None:
    sizes = [int(size) for size in os.environ.get("BENCH_TURNS", "10000,100000").split(",")]
    rng = random.Random(8)  # noqa: S311 - synthetic labels, not secrets
    for n in sizes:
        threads = max(n // 20, 1)
        a = [rng.randrange(threads) for _ in range(n)]
        b = [label if rng.random() < 0.8 else rng.randrange(threads) for label in a]
        timings = {}
        for name, measure in (
            ("all clustering measures", metrics.clustering_measures),
            ("one_to_one", metrics.one_to_one),
            ("local_agreement (k=3)", metrics.local_agreement),
        ):
            started = time.perf_counter()
            measure(a, b)
            timings[name] = time.perf_counter() - started
        figures = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items())
        print(f"{n:>9,} turns, {threads:,} threads: {figures}")


if __name__ == "__main__":
    main()
