"""Seconds per `egoworld play` chunk: one model call making `num_frames - 1` new frames.

    python benchmarks/bench_play_chunk.py [--model DIR] [--steps 12 4] [--threads 1 2] [--runs 3]

Loads the model as `egoworld play` does (`egoworld.play.engine.load_engine`; default the shipped
demo-nav), makes one warm-up chunk, then times `--runs` chunks of forward presses from the bundled
"generated room" start image for each (steps, threads) pair. Prints one JSON line per pair.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="world-model folder (default: the shipped demo-nav)")
    parser.add_argument("--steps", type=int, nargs="+", default=[12, 4], help="sampler steps per chunk")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU threads")
    parser.add_argument("--runs", type=int, default=3, help="timed chunks per setting")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from egoworld.play.engine import load_engine
    from egoworld.play.samples import samples

    for threads in args.threads:
        for steps in args.steps:
            engine = load_engine(args.model, steps=steps, threads=threads)
            room = Image.fromarray(samples()["world-room"].pixels).resize((engine.width, engine.height))
            start = np.asarray(room, dtype=np.uint8)  # [H, W, 3]
            actions = np.zeros((engine.chunk_size + 1, engine.model.config.action_dim), np.float32)
            actions[1:, 0] = 1.0  # one waypoint forward per frame (row 0: the start frame)
            engine.warmup()
            seconds = []
            for run in range(args.runs):
                t0 = time.perf_counter()
                engine.generate(start, actions, engine.controller.state_vector(None), seed=run)
                seconds.append(round(time.perf_counter() - t0, 2))
            engine.close()
            print(
                json.dumps(
                    {
                        "model": engine.name,
                        "steps": steps,
                        "threads": threads,
                        "new_frames": engine.chunk_size,
                        "seconds_per_chunk": seconds,
                        "machine": f"{platform.machine()}, torch {torch.__version__}",
                    }
                )
            )


if __name__ == "__main__":
    main()
