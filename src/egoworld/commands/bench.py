"""`egoworld bench latency`: rollout latency of chunked world models against a frame-wise baseline.

    egoworld bench latency [--device cpu|cuda] [--presets tiny|real] [--horizons 8,16,32,64]
                           [--families svd,cosmos,wan] [--steps N] [--repeats R] [--out latency.md]

The protocol of EgoWM Figure 5 (§5.1, Appendix B): the same start image and actions, rollouts of
8-64 future frames, each model at its native resolution, one device, timed in the same run:
  - SVD: chunks of 8 new frames, each conditioned on the last generated one;
  - Cosmos / Wan: one pass of up to `--max-pass` frames (4(T-1)+1 video frames for T latent
    frames), overlapping chunks beyond;
  - the frame-wise baseline (`egoworld.baselines.framewise`, NWM-style): one frame per sampling
    loop from 4 context frames, at its own native resolution (NWM: 224x224), with its width
    chosen so that its denoiser has as many parameters as the backbone's (base + action encoder).
Every model runs `--steps` sampler steps per denoising loop without guidance (one call per step).
Reports the median seconds over `--repeats`, the ratio baseline / model, frames per second,
denoiser calls (counted) and peak memory (CUDA: max allocated; CPU: peak RSS growth, sampled).
Writes a Markdown table, a JSON file and a frames-vs-seconds plot.

`--presets real --device cuda` builds real-size configs (SVD-XT, Cosmos-Predict2-2B, Wan 2.1
Fun-InP 1.3B) with random weights in bf16; UNTESTED in this repository so far (no GPU was
available where it was written), as are `--compile` and `--attention`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import shlex
import statistics
import sys
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

FAMILY_NAMES = {"svd": "SVD", "cosmos": "Cosmos", "wan": "Wan"}
SVD_CHUNK = 8  # new frames per SVD chunk (the paper: 8-frame chunks)

# (preset, height, width) per family. Real: the paper's native resolutions (SVD 512x512, Cosmos
# 480x640) and Wan 2.1's 480p. Tiny: about 1/8 of those, rounded to what the tiny VAEs accept.
PRESETS = {
    "tiny": {"svd": ("tiny", 64, 64), "cosmos": ("tiny", 64, 80), "wan": ("tiny", 64, 112)},
    "real": {
        "svd": ("svd-xt", 512, 512),
        "cosmos": ("cosmos-predict2-2b", 480, 640),
        "wan": ("wan2.1-fun-1.3b-inp", 480, 832),
    },
}


def baseline_template(presets: str):
    """The frame-wise baseline before width matching: NWM's 224x224 (tiny: 32x32), depth 28 (tiny: 2)."""
    from egoworld.baselines import FramewiseConfig

    if presets == "real":
        return FramewiseConfig(height=224, width=224, vae="sd", depth=28, hidden_dim=1152, num_heads=18)
    return FramewiseConfig(height=32, width=32, vae="tiny", depth=2, hidden_dim=64, num_heads=4)


def register(subparsers) -> None:
    """Add the `bench` parser with its `latency` action."""
    parser = subparsers.add_parser("bench", help="benchmarks (rollout latency)")
    sub = parser.add_subparsers(dest="bench_command", metavar="ACTION")
    p = sub.add_parser(
        "latency",
        help="rollout latency vs a frame-wise autoregressive baseline (EgoWM Figure 5)",
        description="Time rollouts of 8..64 frames for each backbone family against an NWM-style "
        "frame-wise DiT of matched parameter count, in the same run.",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--presets", choices=("tiny", "real"), default="tiny", help="model sizes (default tiny)")
    p.add_argument("--horizons", default="8,16,32,64", help="future frames to roll out (default 8,16,32,64)")
    p.add_argument("--families", default="svd,cosmos,wan", help="backbone families (default svd,cosmos,wan)")
    p.add_argument("--steps", type=int, help="sampler steps for every model (default: tiny 4, real 10)")
    p.add_argument("--baseline-steps", type=int, help="sampler steps of the baseline (default --steps)")
    p.add_argument(
        "--baseline-resolution",
        choices=("native", "matched"),
        default="native",
        help="baseline at NWM's native size (default) or at each backbone's size",
    )
    p.add_argument(
        "--max-pass", type=int, default=64, help="Cosmos/Wan: most new frames per pass (default 64)"
    )
    p.add_argument("--repeats", type=int, default=2, help="timed repeats per point, median reported")
    p.add_argument("--compile", action="store_true", help="torch.compile the denoisers (CUDA; untested)")
    p.add_argument(
        "--attention",
        choices=("default", "flash", "efficient", "math"),
        default="default",
        help="SDPA backend on CUDA (untested)",
    )
    p.add_argument("--out", type=Path, default=Path("latency.md"), help="Markdown report (+ .json beside it)")
    p.add_argument("--plot", type=Path, help="plot path (default: the report path with .png)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, start image, actions, sampling")
    p.set_defaults(func=run_latency)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


# building ---------------------------------------------------------------------------------------


def build_world_model(family: str, presets: str, steps: int, max_pass: int, device, dtype):
    """A randomly initialised `WorldModel` of the family at its bench resolution, on `device`."""
    import torch

    from egoworld.backbones import cosmos
    from egoworld.codecs import WanCodec
    from egoworld.conditioning import condition_on_actions
    from egoworld.world_model import WorldModel, WorldModelConfig

    preset, height, width = PRESETS[presets][family]
    config = WorldModelConfig(
        family=family,
        preset=preset,
        height=height,
        width=width,
        encoder="sincos" if family == "svd" else "mlp",
        num_frames=SVD_CHUNK + 1 if family == "svd" else pass_frames(max_pass, max_pass),
        num_inference_steps=steps,
        guidance=1.0,
    )
    with torch.device(device):
        if family == "cosmos" and preset == "tiny":  # the tiny preset's RoPE table stops at 16 latent frames
            base = cosmos.build_transformer("tiny", max_size=(32, 32, 32))
            denoiser = condition_on_actions(base, config.action_dim, encoder=config.encoder)
            model = WorldModel(config, denoiser, WanCodec(cosmos.build_vae("tiny")))
        else:
            model = WorldModel.build(config)
    return model.to(device=device, dtype=dtype).eval()


def build_baseline(presets: str, target_params: int, size: tuple[int, int] | None, steps: int, device, dtype):
    """The frame-wise baseline with its denoiser width matched to `target_params`."""
    import torch

    from egoworld.baselines import FramewiseWorldModel, match_parameter_count

    template = baseline_template(presets)
    if size is not None:
        template = dataclasses.replace(template, height=size[0], width=size[1])
    template = dataclasses.replace(template, num_inference_steps=steps)
    config = match_parameter_count(target_params, template, head_dim=64 if presets == "real" else 16)
    with torch.device(device):
        model = FramewiseWorldModel(config)
    return model.to(device=device, dtype=dtype).eval()


def pass_frames(horizon: int, max_pass: int) -> int:
    """Cosmos/Wan video frames per pass (condition frame included): 4k+1 covering min(horizon, max_pass)."""
    new = min(horizon, max_pass)
    return 4 * math.ceil(new / 4) + 1


def parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


# measuring --------------------------------------------------------------------------------------


class PeakRSS:
    """Peak resident memory growth of this process while the block runs (sampled every 5 ms)."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self._page
        except OSError:
            return 0

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self._rss()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def timed(fn, device) -> tuple[float, int]:
    """(seconds, peak memory bytes) of one call of `fn`."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize(device)
        return time.perf_counter() - t0, torch.cuda.max_memory_allocated(device)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
    return seconds, mem.growth


class CallCounter:
    """Counts forward calls of a module (the denoiser) with a pre-hook."""

    def __init__(self, module):
        self.count = 0
        self._handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, *_):
        self.count += 1

    def remove(self) -> None:
        self._handle.remove()


def inputs(height: int, width: int, frames: int, seed: int):
    """The shared inputs: a smooth random start image uint8 [H, W, 3] and actions [frames + 1, 3]."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = np.array(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))
    actions = np.zeros((frames + 1, 3), np.float32)
    actions[1:, 0] = 1.0  # forward one waypoint spacing per step
    actions[1:, 2] = 0.1 * np.sin(np.arange(frames) / 4)  # a gentle weave
    return image, actions


def _summary(runs: list[tuple[float, int]], calls: int, repeats: int) -> dict:
    seconds = [r[0] for r in runs]
    return {
        "seconds": statistics.median(seconds),
        "min_seconds": min(seconds),
        "all_seconds": seconds,
        "peak_bytes": max(r[1] for r in runs),
        "calls": calls // repeats,
    }


def measure_pair(model, baseline, run_model, run_baseline, horizons, repeats, device, warm_all: bool):
    """Per horizon: {"model": ..., "baseline": ...} with median seconds, peak memory, counted calls.

    The two are timed alternately (model, baseline, model, baseline, ...) so that both see the same
    machine load; each is warmed up once (per horizon with `warm_all`, e.g. for torch.compile).
    """
    out = {}
    for i, h in enumerate(horizons):
        if warm_all or i == 0:
            run_model(model, h)  # warm-up (and compilation), not timed
            run_baseline(baseline, h)
        counters = CallCounter(model.denoiser), CallCounter(baseline.denoiser)
        runs: tuple[list, list] = ([], [])
        for _ in range(repeats):
            runs[0].append(timed(lambda h=h: run_model(model, h), device))
            runs[1].append(timed(lambda h=h: run_baseline(baseline, h), device))
        for c in counters:
            c.remove()
        out[h] = {
            "model": _summary(runs[0], counters[0].count, repeats),
            "baseline": _summary(runs[1], counters[1].count, repeats),
        }
    return out


# the run ----------------------------------------------------------------------------------------


def _parse_list(text: str, what: str, cast=str) -> list:
    try:
        items = [cast(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--{what} {text!r}; expected a comma-separated list") from None
    if not items:
        raise ValueError(f"--{what} {text!r} is empty")
    return items


def _settings(args):
    import torch

    horizons = sorted(set(_parse_list(args.horizons, "horizons", int)))
    if horizons[0] < 1:
        raise ValueError(f"--horizons {args.horizons!r}; expected frame counts >= 1")
    families = _parse_list(args.families, "families")
    unknown = [f for f in families if f not in FAMILY_NAMES]
    if unknown:
        raise ValueError(f"--families: unknown {unknown}; expected from {sorted(FAMILY_NAMES)}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but torch sees no CUDA device; expected --device cpu here")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {args.device!r}; expected cpu or cuda")
    if args.presets == "real" and device.type != "cuda":
        logger.warning("real-size presets on the CPU will take very long")
    steps = args.steps or (10 if args.presets == "real" else 4)
    if steps < 1 or args.repeats < 1 or args.max_pass < 4:
        raise ValueError(
            f"--steps {steps}, --repeats {args.repeats}, --max-pass {args.max_pass}; "
            "expected steps >= 1, repeats >= 1, max-pass >= 4"
        )
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return horizons, families, device, steps, args.baseline_steps or steps, dtype


def _attention_context(name: str, device):
    import contextlib

    if name == "default" or device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }[name]
    return sdpa_kernel(backend)


def run_latency(args: argparse.Namespace) -> int:
    import torch

    horizons, families, device, steps, baseline_steps, dtype = _settings(args)
    plot_path = args.plot or args.out.with_suffix(".png")
    torch.manual_seed(args.seed)
    results = []
    for family in families:
        torch.manual_seed(args.seed)
        model = build_world_model(family, args.presets, steps, args.max_pass, device, dtype)
        c = model.config
        size = None if args.baseline_resolution == "native" else (c.height, c.width)
        baseline = build_baseline(
            args.presets, parameters(model.denoiser), size, baseline_steps, device, dtype
        )
        if args.compile:
            model.denoiser.base.compile()
            baseline.denoiser.compile()
        image, actions = inputs(c.height, c.width, max(horizons), args.seed)
        b_image, _ = inputs(baseline.config.height, baseline.config.width, max(horizons), args.seed)

        def run_model(m, h, image=image, actions=actions):
            if m.config.family != "svd":
                m.config.num_frames = pass_frames(h, args.max_pass)
            m.rollout(image, actions[: h + 1], normalized=True, seed=args.seed, num_inference_steps=steps)

        def run_baseline(m, h, image=b_image, actions=actions):
            m.rollout(image, actions[: h + 1], seed=args.seed, num_inference_steps=baseline_steps)

        print(
            f"{FAMILY_NAMES[family]} ({c.preset}, {c.height}x{c.width}, "
            f"{parameters(model.denoiser):,} params) "
            f"vs frame-wise baseline ({baseline.config.height}x{baseline.config.width}, "
            f"{baseline.num_parameters():,} params) ..."
        )
        with torch.inference_mode(), _attention_context(args.attention, device):
            times = measure_pair(
                model, baseline, run_model, run_baseline, horizons, args.repeats, device, args.compile
            )
        m_times = {h: t["model"] for h, t in times.items()}
        b_times = {h: t["baseline"] for h, t in times.items()}
        for h in horizons:
            row = {
                "family": family,
                "preset": c.preset,
                "resolution": [c.height, c.width],
                "params": parameters(model.denoiser),
                "baseline_resolution": [baseline.config.height, baseline.config.width],
                "baseline_params": baseline.num_parameters(),
                "baseline_width": baseline.config.hidden_dim,
                "frames": h,
                "model": m_times[h],
                "baseline": b_times[h],
                "speedup": b_times[h]["seconds"] / m_times[h]["seconds"],
            }
            results.append(row)
            print(
                f"  {h:3d} frames: model {m_times[h]['seconds']:8.2f} s ({m_times[h]['calls']} calls)  "
                f"baseline {b_times[h]['seconds']:8.2f} s ({b_times[h]['calls']} calls)  "
                f"ratio {row['speedup']:.2f}x"
            )
        del model, baseline
        if device.type == "cuda":
            torch.cuda.empty_cache()
    meta = _machine(args, device, steps, baseline_steps)
    write_report(args.out, plot_path, results, meta)
    print(f"report: {args.out}\nplot: {plot_path}\ndata: {args.out.with_suffix('.json')}")
    return 0


def _machine(args, device, steps: int, baseline_steps: int) -> dict:
    import torch

    meta = {
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
        "presets": args.presets,
        "steps": steps,
        "baseline_steps": baseline_steps,
        "repeats": args.repeats,
        "max_pass": args.max_pass,
        "compile": args.compile,
        "attention": args.attention,
        "dtype": "bf16" if device.type == "cuda" else "fp32",
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
    return meta


# reporting --------------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f}"


def markdown(results: list[dict], meta: dict) -> str:
    """The report: settings, then one row per (family, horizon)."""
    mem = "peak GPU alloc (MiB)" if meta["device"].startswith("cuda") else "peak RSS growth (MiB)"
    lines = [
        "# Rollout latency: chunked world models vs a frame-wise autoregressive DiT",
        "",
        f"Command: `{meta['command'].strip()}`",
        f"Machine: {meta['platform']}, {meta['cpu_threads']} CPU threads, torch {meta['torch']}, "
        f"device {meta.get('gpu', meta['device'])}, {meta['dtype']}; load average at the end "
        f"{meta['loadavg'] and ', '.join(f'{x:.1f}' for x in meta['loadavg'])}.",
        f"Sampler steps: models {meta['steps']}, baseline {meta['baseline_steps']} (no guidance); "
        f"median of {meta['repeats']} runs after a warm-up; Cosmos/Wan at most {meta['max_pass']} "
        f"new frames per pass, SVD chunks of {SVD_CHUNK}.",
        "",
        f"| backbone | size | params | baseline size | baseline params | frames | calls | seconds "
        f"| baseline calls | baseline seconds | baseline / model | model frames/s | {mem} "
        f"| baseline {mem} |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        m, b = r["model"], r["baseline"]
        lines.append(
            f"| {FAMILY_NAMES[r['family']]} ({r['preset']}) | {r['resolution'][0]}x{r['resolution'][1]} "
            f"| {r['params'] / 1e6:.2f} M | {r['baseline_resolution'][0]}x{r['baseline_resolution'][1]} "
            f"| {r['baseline_params'] / 1e6:.2f} M | {r['frames']} | {m['calls']} | {m['seconds']:.2f} "
            f"| {b['calls']} | {b['seconds']:.2f} | {r['speedup']:.2f}x | {r['frames'] / m['seconds']:.2f} "
            f"| {_mib(m['peak_bytes'])} | {_mib(b['peak_bytes'])} |"
        )
    return "\n".join(lines) + "\n"


def plot(path: Path, results: list[dict], meta: dict) -> None:
    """Frames vs seconds: a solid line per backbone, its matched baseline dashed in the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from egoworld.io_utils import atomic_path

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for i, family in enumerate(dict.fromkeys(r["family"] for r in results)):
        rows = [r for r in results if r["family"] == family]
        x = [r["frames"] for r in rows]
        colour = f"C{i}"
        name = FAMILY_NAMES[family]
        ax.plot(x, [r["model"]["seconds"] for r in rows], "o-", color=colour, label=f"{name} (chunked)")
        ax.plot(
            x,
            [r["baseline"]["seconds"] for r in rows],
            "s--",
            color=colour,
            alpha=0.7,
            label=f"frame-wise DiT, {rows[0]['baseline_params'] / 1e6:.2f} M (matched to {name})",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted({r["frames"] for r in results}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("frames rolled out")
    ax.set_ylabel("seconds")
    ax.set_title(
        f"Rollout latency ({meta['presets']} presets, {meta.get('gpu', meta['device'])})", fontsize=10
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_report(out: Path, plot_path: Path, results: list[dict], meta: dict) -> None:
    from egoworld.io_utils import atomic_path

    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    with atomic_path(out) as tmp:
        tmp.write_text(markdown(results, meta))
    plot(plot_path, results, meta)
