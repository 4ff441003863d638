"""`egoworld bench latency`: rollout latency of chunked world models against a frame-wise baseline.

    egoworld bench latency [--device cpu|cuda] [--presets tiny|real] [--horizons 8,16,32,64]
                           [--families svd,cosmos,wan] [--steps N] [--repeats R] [--out latency.md]

The protocol (EgoWM Figure 5) and the measuring live in `egoworld.bench.latency`; this file parses
the options and reports. Writes a Markdown table, a JSON file beside it and a frames-vs-seconds plot.
`--presets real --device cuda` builds real-size configs (SVD-XT, Cosmos-Predict2-2B, Wan 2.1
Fun-InP 1.3B) with random weights in bf16; `benchmarks/gpu/run.sh` runs it on a GPU.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from egoworld.bench.latency import ATTENTION_BACKENDS  # stdlib-only at import: --help stays light
from egoworld.cli import add_command, device_name, int_in

EXAMPLES = """
egoworld bench latency --repeats 3 --out latency.md
egoworld bench latency --families cosmos --horizons 4,8 --steps 1 --repeats 1 --out /tmp/lat.md
egoworld bench latency --device cuda --presets real --steps 10 --attention flash --out gpu/latency.md
"""


def register(subparsers) -> None:
    """Add the `bench` parser with its `latency` action."""
    parser = add_command(
        subparsers,
        "bench",
        help="benchmarks (rollout latency)",
        description="Benchmarks that write their figures with the command and machine that produced them. "
        "One action: latency. The GPU suite (training steps, MFU, frames per second, SAM 2) is "
        "benchmarks/gpu/run.sh.",
        examples=EXAMPLES,
    )
    sub = parser.add_subparsers(dest="bench_command", metavar="ACTION")
    p = add_command(
        sub,
        "latency",
        help="rollout latency vs a frame-wise autoregressive baseline (EgoWM Figure 5)",
        description="Time rollouts of 8..64 frames for each backbone family against an NWM-style "
        "frame-wise DiT of matched parameter count, in the same run (docs/performance.md).",
        examples=EXAMPLES,
    )
    p.add_argument("--device", type=device_name, default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--presets", choices=("tiny", "real"), default="tiny", help="model sizes (default tiny)")
    p.add_argument("--horizons", default="8,16,32,64", help="future frames to roll out (default 8,16,32,64)")
    p.add_argument("--families", default="svd,cosmos,wan", help="backbone families (default svd,cosmos,wan)")
    p.add_argument("--steps", type=int_in(1), help="sampler steps for every model (default: tiny 4, real 10)")
    p.add_argument("--baseline-steps", type=int_in(1), help="sampler steps of the baseline (default --steps)")
    p.add_argument(
        "--baseline-resolution",
        choices=("native", "matched"),
        default="native",
        help="baseline at NWM's native size (default) or at each backbone's size",
    )
    p.add_argument(
        "--max-pass", type=int_in(4), default=64, help="Cosmos/Wan: most new frames per pass (default 64)"
    )
    p.add_argument(
        "--repeats", type=int_in(1), default=2, help="timed repeats per point, median reported (default 2)"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the denoisers before timing")
    p.add_argument("--attention", choices=ATTENTION_BACKENDS, default="default", help="SDPA backend on CUDA")
    p.add_argument("--out", type=Path, default=Path("latency.md"), help="Markdown report (+ .json beside it)")
    p.add_argument("--plot", type=Path, help="plot path (default: the report path with .png)")
    p.add_argument(
        "--seed", type=int_in(0, 2**63 - 1), default=0, help="seed for weights, image, actions, sampling"
    )
    p.set_defaults(func=run_latency)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _parse_list(text: str, what: str, cast=str) -> list:
    try:
        items = [cast(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--{what} {text!r}; expected a comma-separated list") from None
    if not items:
        raise ValueError(f"--{what} {text!r} is empty")
    return items


def run_latency(args: argparse.Namespace) -> int:
    from egoworld.bench import latency

    settings = latency.LatencySettings(
        device=args.device,
        presets=args.presets,
        horizons=tuple(_parse_list(args.horizons, "horizons", int)),
        families=tuple(_parse_list(args.families, "families")),
        steps=args.steps,
        baseline_steps=args.baseline_steps,
        baseline_resolution=args.baseline_resolution,
        max_pass=args.max_pass,
        repeats=args.repeats,
        compile=args.compile,
        attention=args.attention,
        seed=args.seed,
    ).validate()
    results = []
    for family in settings.families:
        rows = latency.measure_family(settings, family)
        r = rows[0]
        print(
            f"{latency.FAMILY_NAMES[family]} ({r['preset']}, {r['resolution'][0]}x{r['resolution'][1]}, "
            f"{r['params']:,} params) vs frame-wise baseline "
            f"({r['baseline_resolution'][0]}x{r['baseline_resolution'][1]}, {r['baseline_params']:,} params)"
        )
        for row in rows:
            m, b = row["model"], row["baseline"]
            print(
                f"  {row['frames']:3d} frames: model {m['seconds']:8.2f} s ({m['calls']} calls)  "
                f"baseline {b['seconds']:8.2f} s ({b['calls']} calls)  ratio {row['speedup']:.2f}x"
            )
        results.extend(rows)
    meta = latency.machine_meta(settings, command=shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    plot_path = args.plot or args.out.with_suffix(".png")
    latency.write_report(args.out, plot_path, results, meta)
    print(f"report: {args.out}\nplot: {plot_path}\ndata: {args.out.with_suffix('.json')}")
    return 0
