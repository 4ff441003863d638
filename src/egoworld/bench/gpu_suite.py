"""One prepared run of the real-size measurements on a GPU, or the same run on the CPU at tiny sizes.

    python -m egoworld.bench.gpu_suite --out DIR [--dry-run] [--only KINDS] [--budget-s S]
    bash benchmarks/gpu/run.sh [--dry-run] [--out DIR]     # sets up the environment, then this

Kinds of measurement, in the order they run (each one independent: an error, out of memory
included, is recorded in its row and the run goes on; what cannot finish inside the time budget is
recorded as skipped):

  train             one training step per family after a warm-up, gradient checkpointing on and
                    off: SVD-XT UNet at 512x512, 1 + 8 frames; Cosmos-Predict2-2B at 480x640, 17
                    frames; Wan 2.1 Fun-InP 1.3B at 480x832, 17 frames; the EgoSim 52-channel
                    Fun-InP 1.3B at its preset's 480x832, 61 frames. Step time (CUDA events, median),
                    peak memory, FLOPs counted with `torch.utils.flop_counter.FlopCounterMode` over
                    one step, MFU = FLOPs / step time / peak (790 TFLOP/s, H200 bf16 dense).
  fps               frames per second of one sampling pass at 512x512 per family (SVD: 8 new
                    frames, Cosmos/Wan: 16), condition encoding and decoding included.
  sam2              SAM 2 mask tracking (random weights, `Sam2Tracker`) of a 16-frame clip.
  latency           `egoworld.bench.latency` at 8/16/32/64 frames per family against the
                    frame-wise baseline at NWM's 224x224.
  latency-variants  the same at 64 frames for one family with each SDPA backend and --compile.

Random weights at real size, in bf16 on CUDA. Every random draw uses a `torch.Generator` made on
the target device (`make_generator`). `--dry-run` runs the same plan on the CPU with the tiny
presets in fp32 (about a minute of CPU time), so that the script is tested in CI.
DIR/results.md (one table per kind) and DIR/results.json are rewritten after every measurement:
a run stopped at its time limit still leaves what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import logging
import os
import platform
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from egoworld.bench import latency

logger = logging.getLogger(__name__)

KINDS = ("train", "fps", "sam2", "latency", "latency-variants")
PEAK_TFLOPS = 790.0  # H200 dense bf16 matrix products, as measured on the lent machines
VARIANTS = ("flash", "efficient", "math", "compile")


@dataclass(frozen=True)
class TrainSpec:
    """One model of the training-step measurement."""

    key: str  # "svd" | "cosmos" | "wan" (WorldModel families) | "egosim" (ObservationModel)
    label: str
    preset: str
    height: int
    width: int
    frames: int


TRAIN_SPECS = {
    "real": (
        TrainSpec("svd", "SVD-XT UNet", "svd-xt", 512, 512, 9),
        TrainSpec("cosmos", "Cosmos-Predict2-2B DiT", "cosmos-predict2-2b", 480, 640, 17),
        TrainSpec("wan", "Wan 2.1 Fun-InP 1.3B DiT", "wan2.1-fun-1.3b-inp", 480, 832, 17),
        TrainSpec("egosim", "EgoSim 52-ch Fun-InP 1.3B DiT", "wan2.1-fun-1.3b-inp", 480, 832, 61),
    ),
    "tiny": (
        TrainSpec("svd", "SVD UNet (tiny)", "tiny", 64, 64, 9),
        TrainSpec("cosmos", "Cosmos DiT (tiny)", "tiny", 64, 80, 17),
        TrainSpec("wan", "Wan InP DiT (tiny)", "tiny", 64, 112, 17),
        TrainSpec("egosim", "EgoSim 16-ch InP DiT (tiny)", "tiny", 32, 32, 9),
    ),
}


@dataclass
class SuiteConfig:
    """What one suite run measures and where it writes.

    Args:
        out: output folder (results.md, results.json).
        dry_run: the CPU plan with tiny presets (the test of this script).
        device: torch device (default cuda; dry run cpu).
        precision: "bf16" or "fp32" (default bf16 on CUDA, fp32 on the CPU).
        only: kinds to run, from `KINDS`.
        budget_s: seconds for all measurements; what would not fit is skipped, what runs past it is
            stopped and recorded as an error.
        peak_tflops: the device's peak for MFU.
        train_repeats: timed training steps (median); one warm-up and one counted step come first.
        fps_steps: sampler steps of the frames-per-second measurement.
        fps_size: (H, W) of the frames-per-second measurement.
        latency_steps: sampler steps of the world models and the baseline in the latency runs.
        latency_horizons: frames rolled out by `latency`; `variant_horizons` by `latency-variants`.
        variant_family: the family of `latency-variants`.
        sam2_frames, sam2_size: length and frame size of the tracked clip; sam2_image_size: SAM 2's
            input size (None: the config's 1024).
        warmup: run each timed call once untimed first (the dry run skips this to stay short).
        threads: torch CPU threads (the dry run uses 1: it tests the script, not the CPU's speed).
        seed: seed of weights and inputs.
        compile_backend: torch.compile backend of the `compile` latency variant.
    """

    out: Path
    dry_run: bool = False
    device: str = "cuda"
    precision: str = "bf16"
    only: tuple[str, ...] = KINDS
    budget_s: float = 460.0
    peak_tflops: float = PEAK_TFLOPS
    train_repeats: int = 3
    fps_steps: int = 10
    fps_size: tuple[int, int] = (512, 512)
    latency_steps: int = 10
    latency_horizons: tuple[int, ...] = (8, 16, 32, 64)
    variant_family: str = "wan"
    variant_horizons: tuple[int, ...] = (64,)
    sam2_frames: int = 16
    sam2_size: tuple[int, int] = (512, 512)
    sam2_image_size: int | None = None
    warmup: bool = True
    threads: int | None = None
    seed: int = 0
    compile_backend: str = "inductor"

    @classmethod
    def dry(cls, out: Path, **overrides) -> SuiteConfig:
        """The CPU plan: tiny presets, fp32, one thread, one timed call each without warm-up, short
        horizons, a 4-frame SAM 2 clip at its smallest input, and a compile that only traces."""
        base = dict(
            out=out,
            dry_run=True,
            device="cpu",
            precision="fp32",
            budget_s=600.0,
            train_repeats=1,
            fps_steps=2,
            fps_size=(64, 64),
            latency_steps=1,
            latency_horizons=(4,),
            variant_family="cosmos",
            variant_horizons=(4,),
            sam2_frames=4,
            sam2_size=(64, 64),
            sam2_image_size=128,
            warmup=False,
            threads=1,
            compile_backend="eager",
        )
        return cls(**{**base, **overrides})

    @property
    def presets(self) -> str:
        return "tiny" if self.dry_run else "real"

    def validate(self) -> SuiteConfig:
        unknown = [k for k in self.only if k not in KINDS]
        if unknown or not self.only:
            raise ValueError(f"measurement kinds {list(self.only)}; expected some of {list(KINDS)}")
        if self.precision not in ("bf16", "fp32"):
            raise ValueError(f"precision {self.precision!r}; expected bf16 or fp32")
        if self.budget_s <= 0 or self.peak_tflops <= 0:
            raise ValueError(f"budget {self.budget_s} s, peak {self.peak_tflops} TFLOP/s; expected both > 0")
        if min(self.train_repeats, self.fps_steps, self.latency_steps) < 1:
            raise ValueError(
                f"train repeats {self.train_repeats}, fps steps {self.fps_steps}, latency steps "
                f"{self.latency_steps}; expected each >= 1"
            )
        if self.variant_family not in latency.FAMILY_NAMES:
            raise ValueError(
                f"variant family {self.variant_family!r}; expected one of {list(latency.FAMILY_NAMES)}"
            )
        import torch

        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} but torch sees no CUDA device; use --dry-run on a CPU")
        return self


# helpers ----------------------------------------------------------------------------------------


def make_generator(device, seed: int):
    """A `torch.Generator` on `device`: a CPU generator cannot fill a CUDA tensor."""
    import torch

    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def _dtype(config: SuiteConfig):
    import torch

    return torch.bfloat16 if config.precision == "bf16" else torch.float32


class _Peak:
    """Peak memory while the block runs: CUDA max allocated (weights included), or CPU RSS growth."""

    def __init__(self, device):
        self.device, self.bytes = device, 0

    def __enter__(self) -> _Peak:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._rss = latency.PeakRSS().__enter__()
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._rss.__exit__(*exc)
            self.bytes = self._rss.growth


def time_calls(fn: Callable[[], object], device, repeats: int) -> tuple[list[float], int]:
    """Seconds of each of `repeats` calls (CUDA events on a GPU) and the peak memory over them."""
    import torch

    seconds = []
    with _Peak(device) as peak:
        for _ in range(repeats):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize(device)
                start.record()
                fn()
                end.record()
                end.synchronize()
                seconds.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                seconds.append(time.perf_counter() - t0)
    return seconds, peak.bytes


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call, as `torch.utils.flop_counter.FlopCounterMode` counts them (matmuls,
    convolutions, SDPA on CUDA; not elementwise ops, nor the CPU's fused attention kernel)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _release(device) -> None:
    import torch

    gc.collect()
    if "torch._dynamo" in sys.modules:  # compiled graphs of one measurement must not leak into the next
        with contextlib.suppress(Exception):
            torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# the measurements --------------------------------------------------------------------------------


def train_inputs(spec: TrainSpec, device, seed: int):
    """A batch of one random clip on `device` and the generator (on `device`) for the step's noise.

    WorldModel families: frames [1, F, 3, H, W] in [-1, 1], actions [1, F, 3]. EgoSim: target,
    scene, skeleton [1, F, 3, H, W] and the unobserved mask [1, F, 1, H, W].
    """
    from egoworld import noise

    g = make_generator(device, seed)
    video = (1, spec.frames, 3, spec.height, spec.width)
    if spec.key == "egosim":
        batch = {k: noise.rand(video, g, device) * 2 - 1 for k in ("target", "scene", "skeleton")}
        mask = noise.rand((1, spec.frames, 1, spec.height, spec.width), g, device)
        batch["mask"] = (mask > 0.5).float()
    else:
        batch = {
            "frames": noise.rand(video, g, device) * 2 - 1,
            "actions": noise.randn((1, spec.frames, 3), g, device),
        }
    return batch, g


def _build_train_model(spec: TrainSpec, config: SuiteConfig, device, dtype):
    import torch

    torch.manual_seed(config.seed)
    if spec.key == "egosim":
        from egoworld.sim.observe import ObservationModel

        with torch.device(device):
            model = ObservationModel.build(
                spec.preset, num_frames=spec.frames, height=spec.height, width=spec.width
            )
        model = model.to(device=device, dtype=dtype)
        return model, model.transformer
    model = latency.build_world_model(
        spec.key, config.presets, 1, spec.frames, device, dtype, size=(spec.height, spec.width)
    )
    return model, model.denoiser.base


def measure_train_step(spec: TrainSpec, config: SuiteConfig, checkpointing: bool) -> list[dict]:
    """One optimizer step (loss, backward, AdamW) after a warm-up: seconds, peak memory, FLOPs, MFU.

    Every model runs its `loss` on pixels (VAE encode included), as `egoworld train` does.
    """
    import torch

    device, dtype = torch.device(config.device), _dtype(config)
    model, base = _build_train_model(spec, config, device, dtype)
    model.train()
    if checkpointing:
        base.enable_gradient_checkpointing()
    else:
        base.disable_gradient_checkpointing()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    batch, generator = train_inputs(spec, device, config.seed)

    def loss():
        return model.loss(batch, generator)

    def step():
        loss().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if config.warmup:
        step()  # optimizer state, kernels, allocator
    flops = count_flops(step)  # (also a warm-up for the timed steps)
    seconds, peak = time_calls(step, device, config.train_repeats)
    median = statistics.median(seconds)
    return [
        {
            "params": sum(p.numel() for p in base.parameters()),
            "trainable_params": sum(p.numel() for p in params),
            "step_s": median,
            "all_s": seconds,
            "peak_bytes": peak,
            "flops": flops,
            "mfu": flops / median / (config.peak_tflops * 1e12) if device.type == "cuda" else None,
        }
    ]


def fps_inputs(height: int, width: int, frames: int, device, seed: int):
    """Start image [1, 3, H, W] in [-1, 1], actions [1, F, 3] (row 0 zero) and a generator, on `device`."""
    import torch

    image, actions = latency.inputs(height, width, frames - 1, seed)
    img = torch.as_tensor(image, device=device).permute(2, 0, 1)[None].float().div(127.5).sub(1)
    return img, torch.as_tensor(actions, device=device)[None], make_generator(device, seed)


def measure_fps(family: str, config: SuiteConfig) -> list[dict]:
    """Generated frames per second of one sampling pass (`family.sample`: encode, sample, decode)."""
    import torch

    device, dtype = torch.device(config.device), _dtype(config)
    frames = latency.SVD_CHUNK + 1 if family == "svd" else 17
    torch.manual_seed(config.seed)
    model = latency.build_world_model(
        family, config.presets, config.fps_steps, frames, device, dtype, size=config.fps_size
    )
    img, actions, generator = fps_inputs(*config.fps_size, frames, device, config.seed)

    def run():
        return model.family.sample(model, img, actions, None, config.fps_steps, 1.0, generator)

    out = {}
    with torch.inference_mode():
        if config.warmup:
            run()
        seconds, peak = time_calls(lambda: out.update(video=run()), device, 1 if config.dry_run else 2)
    if tuple(out["video"].shape[:2]) != (1, frames):
        raise RuntimeError(
            f"sampled video of shape {tuple(out['video'].shape)}; expected [1, {frames}, 3, H, W]"
        )
    median = statistics.median(seconds)
    return [
        {
            "params": latency.parameters(model.denoiser),
            "new_frames": frames - 1,
            "pass_s": median,
            "fps": (frames - 1) / median,
            "peak_bytes": peak,
        }
    ]


def measure_sam2(config: SuiteConfig) -> list[dict]:
    """SAM 2 (random weights) tracking one clicked object through a `sam2_frames`-frame clip."""
    import numpy as np
    import torch

    from egoworld.metrics.tracking import DEFAULT_SAM2_CONFIG, ObjectPrompt, Sam2Tracker

    device = torch.device(config.device)
    h, w, frames = *config.sam2_size, config.sam2_frames
    tracker = Sam2Tracker(DEFAULT_SAM2_CONFIG, None, device=str(device), image_size=config.sam2_image_size)
    image, _ = latency.inputs(h, w, 1, config.seed)
    clip = np.stack([np.roll(image, 2 * i, axis=1) for i in range(frames)])  # [T, H, W, 3], panning
    prompt = ObjectPrompt("centre", 0, points=np.array([[w / 2, h / 2]]), labels=np.array([1], np.int32))
    if config.warmup:
        tracker.track(clip[:4], [prompt])
    out = {}
    seconds, peak = time_calls(lambda: out.update(masks=tracker.track(clip, [prompt])), device, 1)
    if out["masks"].shape != (frames, 1, h, w):
        raise RuntimeError(f"masks of shape {out['masks'].shape}; expected {(frames, 1, h, w)}")
    return [{"seconds": seconds[0], "fps": frames / seconds[0], "peak_bytes": peak}]


def measure_latency(config: SuiteConfig, family: str, variant: str, horizons: tuple[int, ...]) -> list[dict]:
    """`egoworld.bench.latency` for one family and one variant (default, an SDPA backend, compile)."""
    settings = latency.LatencySettings(
        device=config.device,
        presets=config.presets,
        horizons=horizons,
        families=(family,),
        steps=config.latency_steps,
        repeats=1,
        compile=variant == "compile",
        compile_backend=config.compile_backend,
        attention=variant if variant in latency.ATTENTION_BACKENDS else "default",
        seed=config.seed,
        precision=config.precision,
    ).validate()
    rows = []
    for r in latency.measure_family(settings, family):
        m, b = r["model"], r["baseline"]
        rows.append(
            {
                "frames": r["frames"],
                "params": r["params"],
                "baseline_params": r["baseline_params"],
                "baseline_resolution": r["baseline_resolution"],
                "model_s": m["seconds"],
                "model_calls": m["calls"],
                "baseline_s": b["seconds"],
                "baseline_calls": b["calls"],
                "speedup": r["speedup"],
                "fps": r["frames"] / m["seconds"],
                "peak_bytes": m["peak_bytes"],
                "baseline_peak_bytes": b["peak_bytes"],
            }
        )
    return rows


# the plan and its run ---------------------------------------------------------------------------


@dataclass
class Measurement:
    """One independent measurement: its row labels, what it runs, and a rough cost for the budget."""

    kind: str
    labels: dict
    run: Callable[[], list[dict]]
    est_s: float


# Rough costs on one H200 (model building included), used only to skip what cannot finish in time.
EST_REAL = {"train": 30.0, "train-egosim": 60.0, "fps": 25.0, "sam2": 20.0, "latency": 70.0, "variant": 60.0}
EST_COMPILE = 180.0


def plan(config: SuiteConfig) -> list[Measurement]:
    """The measurements of `config.only`, cheapest and most wanted first."""
    est = (lambda k: 1.0) if config.dry_run else EST_REAL.get
    out: list[Measurement] = []
    if "train" in config.only:
        for spec in TRAIN_SPECS[config.presets]:
            for ckpt in (True, False):  # on first: it is the one that fits when memory is short
                out.append(
                    Measurement(
                        "train",
                        {
                            "model": spec.label,
                            "size": f"{spec.height}x{spec.width}",
                            "frames": spec.frames,
                            "checkpointing": "on" if ckpt else "off",
                        },
                        lambda spec=spec, ckpt=ckpt: measure_train_step(spec, config, ckpt),
                        est("train-egosim" if spec.key == "egosim" else "train"),
                    )
                )
    if "fps" in config.only:
        for family in latency.FAMILY_NAMES:
            size = f"{config.fps_size[0]}x{config.fps_size[1]}"
            out.append(
                Measurement(
                    "fps",
                    {"backbone": latency.FAMILY_NAMES[family], "size": size, "steps": config.fps_steps},
                    lambda family=family: measure_fps(family, config),
                    est("fps"),
                )
            )
    if "sam2" in config.only:
        size = f"{config.sam2_size[0]}x{config.sam2_size[1]}"
        out.append(
            Measurement(
                "sam2",
                {"tracker": "SAM 2.1 hiera-t, random weights", "frames": config.sam2_frames, "size": size},
                lambda: measure_sam2(config),
                est("sam2"),
            )
        )
    runs = []
    if "latency" in config.only:
        runs += [("default", f, config.latency_horizons, est("latency")) for f in latency.FAMILY_NAMES]
    if "latency-variants" in config.only:
        for v in VARIANTS:
            cost = 1.0 if config.dry_run else (EST_COMPILE if v == "compile" else est("variant"))
            runs.append((v, config.variant_family, config.variant_horizons, cost))
    for variant, family, horizons, cost in runs:
        out.append(
            Measurement(
                "latency",
                {
                    "variant": variant if variant in ("default", "compile") else f"sdpa={variant}",
                    "backbone": latency.FAMILY_NAMES[family],
                },
                lambda f=family, v=variant, h=horizons: measure_latency(config, f, v, h),
                cost,
            )
        )
    return out


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise TimeoutError in the main thread once `seconds` have passed (no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError("stopped at the end of the suite's time budget")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


def run_suite(
    measurements: list[Measurement], budget_s: float, on_update: Callable[[list[dict]], None] | None = None
) -> list[dict]:
    """Run each measurement inside what is left of `budget_s`; returns one row per result.

    A row holds the measurement's labels, its results, "kind", "status" ("ok", "error",
    "skipped") and, unless ok, "error". `on_update(rows)` is called after every measurement.
    """
    import torch

    start = time.monotonic()
    rows: list[dict] = []
    for i, m in enumerate(measurements, 1):
        left = budget_s - (time.monotonic() - start)
        head = {"kind": m.kind, **m.labels}
        if m.est_s > left:
            rows.append(
                {
                    **head,
                    "status": "skipped",
                    "error": f"{left:.0f} s of the budget left, needs ~{m.est_s:.0f} s",
                }
            )
            logger.info("[%d/%d] %s %s: skipped (budget)", i, len(measurements), m.kind, m.labels)
        else:
            logger.info("[%d/%d] %s %s ...", i, len(measurements), m.kind, m.labels)
            t0 = time.monotonic()
            try:
                with _deadline(left):
                    results = m.run()
                rows.extend({**head, **r, "status": "ok"} for r in results)
                logger.info("  ok in %.1f s", time.monotonic() - t0)
            except KeyboardInterrupt:  # run.sh's time limit: record this one and those never started
                rows.append({**head, "status": "error", "error": "interrupted (time limit of run.sh)"})
                for rest in measurements[i:]:
                    rows.append(
                        {"kind": rest.kind, **rest.labels, "status": "skipped", "error": "interrupted"}
                    )
                if on_update is not None:
                    on_update(rows)
                raise
            except Exception as err:  # one failing measurement (OOM, a missing package, ...) is recorded
                logger.error(
                    "  failed after %.1f s: %s", time.monotonic() - t0, _one_line(err), exc_info=True
                )
                rows.append({**head, "status": "error", "error": _one_line(err)})
            finally:
                _release(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        if on_update is not None:
            on_update(rows)
    return rows


# reporting --------------------------------------------------------------------------------------


def _mib(n) -> str:
    return f"{n / 2**20:,.0f}"


def _millions(n) -> str:
    return f"{n / 1e6:,.1f}" if n >= 1e7 else f"{n / 1e6:.3g}"


def _mfu(r) -> str:
    return "n/a (CPU)" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"


COLUMNS: dict[str, list[tuple[str, Callable[[dict], object]]]] = {
    "train": [
        ("model", lambda r: r["model"]),
        ("size", lambda r: r["size"]),
        ("frames", lambda r: r["frames"]),
        ("grad. checkpointing", lambda r: r["checkpointing"]),
        ("trainable params (M)", lambda r: _millions(r["trainable_params"])),
        ("step s", lambda r: f"{r['step_s']:.3f}"),
        ("peak mem (MiB)", lambda r: _mib(r["peak_bytes"])),
        ("TFLOP / step", lambda r: f"{r['flops'] / 1e12:.4g}"),
        ("MFU", _mfu),
    ],
    "fps": [
        ("backbone", lambda r: r["backbone"]),
        ("size", lambda r: r["size"]),
        ("steps", lambda r: r["steps"]),
        ("params (M)", lambda r: _millions(r["params"])),
        ("new frames / pass", lambda r: r["new_frames"]),
        ("pass s", lambda r: f"{r['pass_s']:.3f}"),
        ("frames/s", lambda r: f"{r['fps']:.2f}"),
        ("peak mem (MiB)", lambda r: _mib(r["peak_bytes"])),
    ],
    "sam2": [
        ("tracker", lambda r: r["tracker"]),
        ("frames", lambda r: r["frames"]),
        ("size", lambda r: r["size"]),
        ("seconds", lambda r: f"{r['seconds']:.3f}"),
        ("frames/s", lambda r: f"{r['fps']:.2f}"),
        ("peak mem (MiB)", lambda r: _mib(r["peak_bytes"])),
    ],
    "latency": [
        ("variant", lambda r: r["variant"]),
        ("backbone", lambda r: r["backbone"]),
        ("frames", lambda r: r["frames"]),
        ("model s", lambda r: f"{r['model_s']:.3f}"),
        ("model calls", lambda r: r["model_calls"]),
        ("baseline s", lambda r: f"{r['baseline_s']:.3f}"),
        ("baseline calls", lambda r: r["baseline_calls"]),
        ("baseline / model", lambda r: f"{r['speedup']:.2f}x"),
        ("model frames/s", lambda r: f"{r['fps']:.2f}"),
        ("peak mem model (MiB)", lambda r: _mib(r["peak_bytes"])),
        ("peak mem baseline (MiB)", lambda r: _mib(r["baseline_peak_bytes"])),
    ],
}

TITLES = {
    "train": "Training step (batch 1, AdamW, after a warm-up)",
    "fps": "Frames per second of one sampling pass",
    "sam2": "SAM 2 mask tracking",
    "latency": "Rollout latency against the frame-wise baseline",
}


def _cell(fn, row) -> str:
    try:
        text = str(fn(row))
    except (KeyError, TypeError):
        return "—"
    return text.replace("|", "\\|")


def _status(row) -> str:
    if row["status"] == "ok":
        return "ok"
    return f"{row['status']}: {row.get('error', '')}"[:200].replace("|", "\\|")


def markdown(rows: list[dict], meta: dict) -> str:
    """The report: a header with the machine and settings, then one table per kind of measurement."""
    title = "# egoworld GPU suite" + (
        " — DRY RUN on the CPU, tiny presets (not real-size figures)" if meta["dry_run"] else ""
    )
    done = meta.get("elapsed_s")
    lines = [
        title,
        "",
        f"Command: `{meta['command']}`",
        f"Machine: {meta['device_name']}; {meta['platform']}, {meta['cpu_count']} CPUs; Python "
        f"{meta['python']}, torch {meta['torch']} (CUDA {meta['cuda']}), diffusers {meta['diffusers']}.",
        f"Precision {meta['precision']}; random weights; MFU against {meta['peak_tflops']:g} TFLOP/s. "
        f"Time budget {meta['budget_s']:.0f} s"
        + (f", used {done:.0f} s." if done is not None else " (run in progress or stopped)."),
        "",
    ]
    for kind in ("train", "fps", "sam2", "latency"):
        kind_rows = [r for r in rows if r["kind"] == kind]
        if not kind_rows:
            continue
        cols = COLUMNS[kind]
        lines += [
            f"## {TITLES[kind]}",
            "",
            "| " + " | ".join(name for name, _ in cols) + " | status |",
            "|" + "---|" * (len(cols) + 1),
        ]
        lines += ["| " + " | ".join(_cell(fn, r) for _, fn in cols) + f" | {_status(r)} |" for r in kind_rows]
        lines.append("")
    lines += [
        "Notes: step and pass times are medians of CUDA-event timings (CPU: wall clock); peak memory is "
        "`torch.cuda.max_memory_allocated` (weights and optimizer state included; CPU: resident-set "
        "growth). FLOPs are counted by `FlopCounterMode` over one step (matmuls, convolutions, SDPA "
        "on CUDA); with gradient checkpointing on, the count includes the recomputed forward, so that "
        "row's MFU is a hardware-FLOP utilisation. Training steps of SVD/Cosmos/Wan include the VAE "
        "encode (as `egoworld train`); EgoSim's runs on latents encoded once (as its trainer). "
        "Latency: one timed run per point after a warm-up, whole rollouts (seconds include encode "
        "and decode), calls counted.",
    ]
    if meta["dry_run"]:
        lines += [
            "",
            "Dry run: the CPU ignores the SDPA backend choice, `compile` uses the `eager` backend "
            "(tracing only), and the CPU's fused attention is not counted in FLOPs.",
        ]
    return "\n".join(lines) + "\n"


def machine_meta(config: SuiteConfig, command: str) -> dict:
    import torch

    try:
        import diffusers

        diffusers_version = diffusers.__version__
    except ImportError:
        diffusers_version = "not installed"
    device = torch.device(config.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.machine()})"
    return {
        "command": command,
        "dry_run": config.dry_run,
        "device": str(device),
        "device_name": name,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "diffusers": diffusers_version,
        "precision": config.precision,
        "peak_tflops": config.peak_tflops,
        "budget_s": config.budget_s,
        "only": list(config.only),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {k: v for k, v in dataclasses.asdict(config).items() if k != "out"},
    }


def write_results(out: Path, rows: list[dict], meta: dict) -> None:
    """results.json (meta + every row) and results.md, each replaced whole."""
    from egoworld.io_utils import atomic_path

    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(markdown(rows, meta))


# command line -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m egoworld.bench.gpu_suite",
        description="Real-size training, latency, frames-per-second and SAM 2 measurements on a GPU "
        "(or --dry-run: the same plan on the CPU at tiny sizes). Writes OUT/results.md and results.json.",
    )
    p.add_argument("--out", type=Path, default=os.environ.get("OUT"), help="output folder (default: $OUT)")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny presets, fp32 (about a minute)")
    p.add_argument("--only", default=",".join(KINDS), help=f"kinds to run (default all: {','.join(KINDS)})")
    p.add_argument("--budget-s", type=float, help="seconds for all measurements (default 460; dry run 600)")
    p.add_argument("--device", help="torch device (default cuda; dry run cpu)")
    p.add_argument("--precision", choices=("bf16", "fp32"), help="default bf16 on CUDA, fp32 on the CPU")
    p.add_argument("--peak-tflops", type=float, help=f"peak for MFU (default {PEAK_TFLOPS:g})")
    p.add_argument("--fps-steps", type=int, help="sampler steps for frames per second (default 10)")
    p.add_argument("--latency-steps", type=int, help="sampler steps in the latency runs (default 10)")
    p.add_argument("--variant-family", choices=tuple(latency.FAMILY_NAMES), help="family of latency-variants")
    return p


def config_from_args(args: argparse.Namespace) -> SuiteConfig:
    if args.out is None:
        raise ValueError("no output folder; expected --out DIR or the environment variable OUT")
    overrides = {
        "only": tuple(k.strip() for k in args.only.split(",") if k.strip()),
        "budget_s": args.budget_s,
        "device": args.device,
        "precision": args.precision,
        "peak_tflops": args.peak_tflops,
        "fps_steps": args.fps_steps,
        "latency_steps": args.latency_steps,
        "variant_family": args.variant_family,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    out = Path(args.out)
    config = SuiteConfig.dry(out, **overrides) if args.dry_run else SuiteConfig(out=out, **overrides)
    return config.validate()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout
    )
    try:
        config = config_from_args(args)
    except ValueError as err:
        print(f"gpu_suite: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    import shlex

    command = "python -m egoworld.bench.gpu_suite " + shlex.join(argv if argv is not None else sys.argv[1:])
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    meta = machine_meta(config, command)
    measurements = plan(config)
    logger.info(
        "%d measurements on %s, budget %.0f s", len(measurements), meta["device_name"], config.budget_s
    )
    config.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    rows: list[dict] = []

    def update(current: list[dict]) -> None:
        rows[:] = current
        write_results(config.out, current, meta)

    write_results(config.out, rows, meta)
    try:
        run_suite(measurements, config.budget_s, on_update=update)
    except KeyboardInterrupt:  # `timeout --signal=INT` in run.sh: keep what was measured
        meta["interrupted"] = True
        logger.error(
            "interrupted; %s keeps the %d rows measured so far", config.out / "results.md", len(rows)
        )
    meta["elapsed_s"] = time.monotonic() - t0
    write_results(config.out, rows, meta)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "error", "skipped")}
    print(
        f"{counts['ok']} rows ok, {counts['error']} errors, {counts['skipped']} skipped in "
        f"{meta['elapsed_s']:.0f} s; table: {config.out / 'results.md'}"
    )
    return 130 if meta.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
