"""Rollout latency of chunked world models against a frame-wise baseline (EgoWM Figure 5).

The protocol of Figure 5 (§5.1, Appendix B): the same start image and actions, rollouts of 8-64
future frames, each model at its native resolution, one device, timed in the same run:
  - SVD: chunks of 8 new frames, each conditioned on the last generated one;
  - Cosmos / Wan: one pass of up to `max_pass` frames (4(T-1)+1 video frames for T latent
    frames), overlapping chunks beyond;
  - the frame-wise baseline (`egoworld.baselines.framewise`, NWM-style): one frame per sampling
    loop from 4 context frames, at its own native resolution (NWM: 224x224), with its width
    chosen so that its denoiser has as many parameters as the backbone's (base + action encoder).
Every model runs `steps` sampler steps per denoising loop without guidance (one call per step).
`measure_family` returns, per horizon, the median seconds over `repeats`, the ratio
baseline / model, denoiser calls (counted) with the share of time inside them, and peak memory
(CUDA: max allocated; CPU: peak RSS growth, sampled). `write_report` writes a Markdown table, a
JSON file and a frames-vs-seconds plot. `egoworld bench latency` is the command line.

Real-size presets (`presets="real"`, CUDA) build SVD-XT, Cosmos-Predict2-2B and Wan 2.1 Fun-InP
1.3B with random weights in bf16. Heavy imports (torch, diffusers) happen inside the functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import platform
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

FAMILY_NAMES = {"svd": "SVD", "cosmos": "Cosmos", "wan": "Wan"}
SVD_CHUNK = 8  # new frames per SVD chunk (the paper: 8-frame chunks)
ATTENTION_BACKENDS = ("default", "flash", "efficient", "math")

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


@dataclass
class LatencySettings:
    """What one latency run measures.

    Args:
        device: "cpu" or "cuda" (or "cuda:N").
        presets: "tiny" (CPU-sized) or "real" (the backbones' real sizes, random weights).
        horizons: future frames to roll out.
        families: backbone families, from `FAMILY_NAMES`.
        steps: sampler steps of the world models (None: tiny 4, real 10).
        baseline_steps: sampler steps of the frame-wise baseline per frame (None: `steps`).
        baseline_resolution: "native" (NWM's 224x224; tiny 32x32) or "matched" (each backbone's size).
        max_pass: Cosmos/Wan: most new frames per pass (overlapping passes beyond).
        repeats: timed repeats per point; the median is reported.
        compile: `nn.Module.compile()` the backbone and the baseline's DiT before timing.
        compile_backend: torch.compile backend ("inductor"; "eager" only traces, for CPU dry runs).
        attention: SDPA backend on CUDA, from `ATTENTION_BACKENDS` (ignored on the CPU).
        seed: seed for weights, start image, actions and sampling.
        precision: "auto" (bf16 on CUDA, fp32 on the CPU), "bf16" or "fp32".
    """

    device: str = "cpu"
    presets: str = "tiny"
    horizons: tuple[int, ...] = (8, 16, 32, 64)
    families: tuple[str, ...] = ("svd", "cosmos", "wan")
    steps: int | None = None
    baseline_steps: int | None = None
    baseline_resolution: str = "native"
    max_pass: int = 64
    repeats: int = 2
    compile: bool = False
    compile_backend: str = "inductor"
    attention: str = "default"
    seed: int = 0
    precision: str = "auto"

    def validate(self) -> LatencySettings:
        """Check the values (ValueError naming the offending one); returns self with sorted horizons."""
        self.horizons = tuple(sorted(set(int(h) for h in self.horizons)))
        self.families = tuple(self.families)
        if not self.horizons or self.horizons[0] < 1:
            raise ValueError(f"horizons {list(self.horizons)}; expected frame counts >= 1")
        unknown = [f for f in self.families if f not in FAMILY_NAMES]
        if unknown:
            raise ValueError(f"families: unknown {unknown}; expected from {sorted(FAMILY_NAMES)}")
        if not self.families:
            raise ValueError("families is empty; expected at least one of svd, cosmos, wan")
        if self.presets not in PRESETS:
            raise ValueError(f"presets {self.presets!r}; expected one of {sorted(PRESETS)}")
        if self.baseline_resolution not in ("native", "matched"):
            raise ValueError(f"baseline_resolution {self.baseline_resolution!r}; expected native or matched")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision {self.precision!r}; expected auto, bf16 or fp32")
        if self.attention not in ATTENTION_BACKENDS:
            raise ValueError(f"attention {self.attention!r}; expected one of {list(ATTENTION_BACKENDS)}")
        device = self.torch_device  # raises for unknown device strings
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"device {self.device!r}; expected cpu or cuda")
        import torch

        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda but torch sees no CUDA device; expected device cpu here")
        if self.presets == "real" and device.type != "cuda":
            logger.warning("real-size presets on the CPU will take very long")
        if self.model_steps < 1 or self.repeats < 1 or self.max_pass < 4 or self.baseline_model_steps < 1:
            raise ValueError(
                f"steps {self.model_steps}, baseline steps {self.baseline_model_steps}, repeats "
                f"{self.repeats}, max pass {self.max_pass}; expected steps >= 1, repeats >= 1, max pass >= 4"
            )
        return self

    @property
    def torch_device(self):
        import torch

        try:
            return torch.device(self.device)
        except RuntimeError:
            raise ValueError(f"device {self.device!r}; expected cpu or cuda") from None

    @property
    def model_steps(self) -> int:
        return self.steps or (10 if self.presets == "real" else 4)

    @property
    def baseline_model_steps(self) -> int:
        return self.baseline_steps or self.model_steps

    @property
    def dtype(self):
        import torch

        if self.precision == "auto":
            return torch.bfloat16 if self.torch_device.type == "cuda" else torch.float32
        return torch.bfloat16 if self.precision == "bf16" else torch.float32


# building ---------------------------------------------------------------------------------------


def baseline_template(presets: str):
    """The frame-wise baseline before width matching: NWM's 224x224 (tiny: 32x32), depth 28 (tiny: 2)."""
    from egoworld.baselines import FramewiseConfig

    if presets == "real":
        return FramewiseConfig(height=224, width=224, vae="sd", depth=28, hidden_dim=1152, num_heads=18)
    return FramewiseConfig(height=32, width=32, vae="tiny", depth=2, hidden_dim=64, num_heads=4)


def build_world_model(
    family: str,
    presets: str,
    steps: int,
    num_frames: int,
    device,
    dtype,
    size: tuple[int, int] | None = None,
):
    """A randomly initialised `WorldModel` of the family, built on `device` in `dtype`, in eval mode.

    `num_frames` video frames per pass (SVD: any; Cosmos/Wan: 4k+1); `size` (H, W) overrides the
    preset's resolution (`PRESETS`).
    """
    import torch

    from egoworld.backbones import cosmos
    from egoworld.codecs import WanCodec
    from egoworld.conditioning import condition_on_actions
    from egoworld.world_model import WorldModel, WorldModelConfig

    preset, height, width = PRESETS[presets][family]
    if size is not None:
        height, width = size
    config = WorldModelConfig(
        family=family,
        preset=preset,
        height=height,
        width=width,
        encoder="sincos" if family == "svd" else "mlp",
        num_frames=num_frames,
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
    """Counts forward calls of a module (the denoiser) and the wall time spent inside them.

    On CUDA the hooks synchronise, so that the time is the calls' own (this adds a little overhead).
    """

    def __init__(self, module, device=None):
        self.count, self.seconds, self._t0 = 0, 0.0, 0.0
        self._cuda = device is not None and device.type == "cuda"
        self._handles = [
            module.register_forward_pre_hook(self._start),
            module.register_forward_hook(self._stop),
        ]

    def _sync(self) -> None:
        if self._cuda:
            import torch

            torch.cuda.synchronize()

    def _start(self, *_):
        self._sync()
        self.count += 1
        self._t0 = time.perf_counter()

    def _stop(self, *_):
        self._sync()
        self.seconds += time.perf_counter() - self._t0

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


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


def _summary(runs: list[tuple[float, int]], counter: CallCounter, repeats: int) -> dict:
    seconds = [r[0] for r in runs]
    return {
        "denoiser_share": counter.seconds / sum(seconds),  # of the rollout time, in denoiser calls
        "seconds": statistics.median(seconds),
        "min_seconds": min(seconds),
        "all_seconds": seconds,
        "peak_bytes": max(r[1] for r in runs),
        "calls": counter.count // repeats,
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
        counters = CallCounter(model.denoiser, device), CallCounter(baseline.denoiser, device)
        runs: tuple[list, list] = ([], [])
        for _ in range(repeats):
            runs[0].append(timed(lambda h=h: run_model(model, h), device))
            runs[1].append(timed(lambda h=h: run_baseline(baseline, h), device))
        for c in counters:
            c.remove()
        out[h] = {
            "model": _summary(runs[0], counters[0], repeats),
            "baseline": _summary(runs[1], counters[1], repeats),
        }
    return out


def attention_context(name: str, device):
    """`torch.nn.attention.sdpa_kernel` for a named SDPA backend on CUDA; a no-op otherwise."""
    if name == "default" or device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }[name]
    return sdpa_kernel(backend)


def measure_family(settings: LatencySettings, family: str) -> list[dict]:
    """Build one family's world model and its matched baseline, time both; one row per horizon."""
    import torch

    s = settings
    device, dtype = s.torch_device, s.dtype
    steps, baseline_steps = s.model_steps, s.baseline_model_steps
    torch.manual_seed(s.seed)
    frames = SVD_CHUNK + 1 if family == "svd" else pass_frames(s.max_pass, s.max_pass)
    model = build_world_model(family, s.presets, steps, frames, device, dtype)
    c = model.config
    size = None if s.baseline_resolution == "native" else (c.height, c.width)
    baseline = build_baseline(s.presets, parameters(model.denoiser), size, baseline_steps, device, dtype)
    if s.compile:
        model.denoiser.base.compile(backend=s.compile_backend)
        baseline.denoiser.compile(backend=s.compile_backend)
    image, actions = inputs(c.height, c.width, max(s.horizons), s.seed)
    b_image, _ = inputs(baseline.config.height, baseline.config.width, max(s.horizons), s.seed)

    def run_model(m, h):
        if m.config.family != "svd":
            m.config.num_frames = pass_frames(h, s.max_pass)
        m.rollout(image, actions[: h + 1], normalized=True, seed=s.seed, num_inference_steps=steps)

    def run_baseline(m, h):
        m.rollout(b_image, actions[: h + 1], seed=s.seed, num_inference_steps=baseline_steps)

    logger.info(
        "%s (%s, %dx%d, %d params) vs frame-wise baseline (%dx%d, %d params)",
        FAMILY_NAMES[family],
        c.preset,
        c.height,
        c.width,
        parameters(model.denoiser),
        baseline.config.height,
        baseline.config.width,
        baseline.num_parameters(),
    )
    with torch.inference_mode(), attention_context(s.attention, device):
        times = measure_pair(
            model, baseline, run_model, run_baseline, s.horizons, s.repeats, device, s.compile
        )
    rows = []
    for h in s.horizons:
        m_t, b_t = times[h]["model"], times[h]["baseline"]
        rows.append(
            {
                "family": family,
                "preset": c.preset,
                "resolution": [c.height, c.width],
                "params": parameters(model.denoiser),
                "baseline_resolution": [baseline.config.height, baseline.config.width],
                "baseline_params": baseline.num_parameters(),
                "baseline_width": baseline.config.hidden_dim,
                "frames": h,
                "model": m_t,
                "baseline": b_t,
                "speedup": b_t["seconds"] / m_t["seconds"],
            }
        )
    return rows


def machine_meta(settings: LatencySettings, command: str) -> dict:
    """Settings and machine facts that go into the report's header and JSON."""
    import torch

    s = settings
    device = s.torch_device
    meta = {
        "command": command,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
        "presets": s.presets,
        "steps": s.model_steps,
        "baseline_steps": s.baseline_model_steps,
        "repeats": s.repeats,
        "max_pass": s.max_pass,
        "compile": s.compile,
        "attention": s.attention,
        "dtype": "bf16" if s.dtype == torch.bfloat16 else "fp32",
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
    return meta


# reporting --------------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f}"


def _seconds(timing: dict) -> str:
    share = timing.get("denoiser_share")
    return f"{timing['seconds']:.2f}" + ("" if share is None else f" ({100 * share:.0f}%)")


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
        "Seconds are wall time of the whole rollout (encode, sampling, decode); in brackets the share "
        "spent inside denoiser calls.",
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
            f"| {r['baseline_params'] / 1e6:.2f} M | {r['frames']} | {m['calls']} | {_seconds(m)} "
            f"| {b['calls']} | {_seconds(b)} | {r['speedup']:.2f}x | {r['frames'] / m['seconds']:.2f} "
            f"| {_mib(m['peak_bytes'])} | {_mib(b['peak_bytes'])} |"
        )
    return "\n".join(lines) + "\n"


def _denoiser_seconds(timing: dict) -> float:
    return timing["seconds"] * timing.get("denoiser_share", float("nan"))


def plot(path: Path, results: list[dict], meta: dict) -> None:
    """Frames vs seconds, whole rollout (left) and inside denoiser calls (right).

    A solid line per backbone, its matched frame-wise baseline dashed in the same colour.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from egoworld.io_utils import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=100, sharex=True)
    panels = (("whole rollout", lambda t: t["seconds"]), ("inside denoiser calls", _denoiser_seconds))
    for ax, (title, value) in zip(axes, panels):
        for i, family in enumerate(dict.fromkeys(r["family"] for r in results)):
            rows = [r for r in results if r["family"] == family]
            x = [r["frames"] for r in rows]
            name, colour = FAMILY_NAMES[family], f"C{i}"
            ax.plot(x, [value(r["model"]) for r in rows], "o-", color=colour, label=f"{name} (chunked)")
            ax.plot(
                x,
                [value(r["baseline"]) for r in rows],
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
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Rollout latency ({meta['presets']} presets, {meta.get('gpu', meta['device'])})", fontsize=11
    )
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_report(out: Path, plot_path: Path | None, results: list[dict], meta: dict) -> None:
    """`out` (Markdown), `out` with .json (meta + every run) and the plot (skipped when None)."""
    from egoworld.io_utils import atomic_path

    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    with atomic_path(out) as tmp:
        tmp.write_text(markdown(results, meta))
    if plot_path is not None:
        plot(plot_path, results, meta)
