"""Rollout latency of the chunked world models against the frame-wise baseline (EgoWM Figure 5).

    .venv/bin/python benchmarks/bench_latency.py [--device cpu|cuda] [--presets tiny|real]
        [--horizons 8,16,32,64] [--out docs/latency.md] [--plot docs/img/latency_cpu.png] ...

The same as `egoworld bench latency` (all options: `egoworld bench latency --help`); the protocol
lives in `egoworld.commands.bench`. Not a test: timings belong in docs/performance.md.
"""

from __future__ import annotations

import sys

from egoworld.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "latency", *sys.argv[1:]]))
