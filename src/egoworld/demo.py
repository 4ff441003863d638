"""`egoworld demo`: a fresh synthetic world, a world-model rollout under its actions, a video and metrics.

1. generate a new navigation world on MuJoCo (seeded) and walk a camera through it;
2. load the walk with the NWM reader, exactly as training data is read;
3. roll the world model out from the first frame under the walk's actions;
4. write `side_by_side.mp4` (ground truth | prediction), `prediction.mp4` and `metrics.json`.

The model is the small one shipped in `egoworld/assets/demo-nav` when present; otherwise a tiny
randomly initialised world model is used and the demo says so: its frames are noise, and the run
only shows that every stage (simulator, reader, diffusion sampler, codec, video, metrics) works.

`check_demo_request` checks a request without importing torch or MuJoCo and without writing
anything; `run_demo` writes nothing before the model is loaded and checked.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SHIPPED_MODEL = Path(__file__).resolve().parent / "assets" / "demo-nav"
HORIZONS = (2, 4, 8, 16)
OUTPUT_FILES = ("side_by_side.mp4", "prediction.mp4", "metrics.json")


def world_folder(out: str | Path, seed: int, frames: int) -> Path:
    """The folder of the demo's world inside `out` (one per seed and length: a rerun reuses it)."""
    return Path(out) / f"world-seed{seed}-{frames}f"


def check_demo_request(
    out: str | Path, *, seed: int = 0, frames: int = 17, steps: int | None = None, model_dir=None
) -> Path | None:
    """Check a demo request before anything is imported or written -> the model folder to load (or None).

    Raises ValueError / FileNotFoundError naming the bad value. `model_dir` may be a world-model
    folder or a training run folder (`egoworld.rollout.resolve_model_dir`).
    """
    from egoworld.io_utils import check_outputs_distinct
    from egoworld.rollout import MAX_FRAMES, MAX_SAMPLER_STEPS, resolve_model_dir

    if isinstance(frames, bool) or not isinstance(frames, int) or not 2 <= frames <= MAX_FRAMES:
        raise ValueError(f"--frames={frames}; expected an integer in [2, {MAX_FRAMES}]")
    if steps is not None and (isinstance(steps, bool) or not 1 <= steps <= MAX_SAMPLER_STEPS):
        raise ValueError(f"--steps={steps}; expected an integer in [1, {MAX_SAMPLER_STEPS}]")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"--seed={seed}; expected an integer in [0, 2**63 - 1]")
    out = Path(out)
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"--out {out}: {folder} is a file; expected a folder for the demo's outputs")
            break
    for name in OUTPUT_FILES:
        if (out / name).is_dir():
            raise ValueError(f"--out {out}: {out / name} is a folder; the demo writes a file there")
    world = world_folder(out, seed, frames)
    if world.exists() and not world.is_dir():
        raise ValueError(f"--out {out}: {world} is a file; the demo writes its world there")
    resolved = None
    if model_dir is not None:
        resolved, _ = resolve_model_dir(model_dir)
        check_outputs_distinct(
            {f"output {name}": out / name for name in OUTPUT_FILES} | {"world folder": world},
            {"--model": resolved},
            replaced_folders=["world folder"],
        )
    return resolved


def load_demo_model(model_dir: str | Path | None = None):
    """(model, description): the given folder, else the shipped model, else a tiny random one."""
    from egoworld.world_model import CONFIG_NAME, WorldModel, WorldModelConfig

    if model_dir is not None:
        return WorldModel.from_pretrained(model_dir), f"model from {model_dir}"
    if (SHIPPED_MODEL / CONFIG_NAME).is_file():
        return WorldModel.from_pretrained(SHIPPED_MODEL), f"shipped model {SHIPPED_MODEL.name}"
    import torch

    torch.manual_seed(0)
    config = WorldModelConfig(family="svd", preset="tiny", num_frames=8, height=32, width=32, hidden_dim=64)
    return WorldModel.build(
        config
    ).eval(), "a tiny RANDOMLY INITIALISED world model (no trained model shipped yet)"


def run_demo(
    out: str | Path,
    *,
    seed: int = 0,
    frames: int = 17,
    steps: int | None = None,
    model_dir=None,
    model=None,
    what: str | None = None,
) -> dict:
    """Run the demo into folder `out`; returns the metrics dictionary.

    `model` (with its description `what`) skips loading; else the model comes from `model_dir`,
    the shipped model or a tiny random one (`load_demo_model`).
    """
    model_dir = check_demo_request(out, seed=seed, frames=frames, steps=steps, model_dir=model_dir)
    # diffusers (through torch._dynamo) loads triton, which crashes when MuJoCo's EGL libraries were
    # loaded first in the same process: the model code is imported before any world is generated.
    import egoworld.world_model  # noqa: F401
    from egoworld.data.nwm import NWMDataset
    from egoworld.data.video import write_video
    from egoworld.io_utils import atomic_path
    from egoworld.metrics.pixel import psnr, ssim
    from egoworld.worlds.generate import WorldSpec, generate

    if model is None:
        model, what = load_demo_model(model_dir)
    what = what or "a given model"
    c = model.config
    if c.height != c.width:
        raise ValueError(f"the demo world renders square frames; the model is {c.height}x{c.width}")
    out = Path(out)
    world_dir = world_folder(out, seed, frames)
    # Small models are trained on worlds rendered at 64 px and resized, as the experiment does.
    # One walk is a demo, not a dataset split: the generator's train==test warning does not apply.
    spec = WorldSpec(task="nav", episodes=1, frames=frames, size=max(64, c.height), seed=seed)
    logging.getLogger("egoworld.worlds.nav").setLevel(logging.ERROR)
    generate(spec, world_dir, progress=False)
    meta = json.loads((world_dir / "egoworld_world.json").read_text())
    clip = NWMDataset(
        world_dir,
        dataset_name=meta["dataset_name"],
        spacing=float(meta["metric_waypoint_spacing"]),
        context=1,
        horizon=frames - 1,
        resolution=(c.height, c.width),
        output="clip",
    ).get_clip(0)  # raw per-step actions: the model normalises (and composes) them itself
    pred = model.rollout(
        clip.frames[0], clip.actions, seed=seed, num_inference_steps=steps, progress=True
    )  # [N, H, W, 3]
    gt = clip.frames[: len(pred)]
    write_video(out / "side_by_side.mp4", np.concatenate([gt, pred], axis=2), fps=5)
    write_video(out / "prediction.mp4", pred, fps=5)
    p, s = psnr(pred, gt), ssim(pred, gt)
    episode = sorted(p.name for p in world_dir.glob("traj_*"))[0]
    metrics = {
        "model": what,
        "world": str(world_dir),
        "episode": str(world_dir / episode),
        "frames": len(pred),
        "psnr": {f"frame_{h}": float(p[h]) for h in HORIZONS if h < len(pred)},
        "ssim": {f"frame_{h}": float(s[h]) for h in HORIZONS if h < len(pred)},
    }
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return metrics
