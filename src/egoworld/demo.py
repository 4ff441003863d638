"""`egoworld demo`: a fresh synthetic world, a world-model rollout under its actions, a video and metrics.

1. generate a new navigation world on MuJoCo (seeded) and walk a camera through it;
2. load the walk with the NWM reader, exactly as training data is read;
3. roll the world model out from the first frame under the walk's actions;
4. write `side_by_side.mp4` (ground truth | prediction), `prediction.mp4` and `metrics.json`.

The model is the small one shipped in `egoworld/assets/demo-nav` when present; otherwise a tiny
randomly initialised world model is used and the demo says so: its frames are noise, and the run
only shows that every stage (simulator, reader, diffusion sampler, codec, video, metrics) works.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from egoworld.world_model import CONFIG_NAME, WorldModel, WorldModelConfig

logger = logging.getLogger(__name__)

SHIPPED_MODEL = Path(__file__).resolve().parent / "assets" / "demo-nav"
HORIZONS = (2, 4, 8, 16)


def load_demo_model(model_dir: str | Path | None = None) -> tuple[WorldModel, str]:
    """(model, description): the given folder, else the shipped model, else a tiny random one."""
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
    out: str | Path, *, seed: int = 0, frames: int = 17, steps: int | None = None, model_dir=None
) -> dict:
    """Run the demo into folder `out`; returns the metrics dictionary."""
    from egoworld.data.nwm import NWMDataset
    from egoworld.data.video import write_video
    from egoworld.io_utils import atomic_path
    from egoworld.metrics.pixel import psnr, ssim
    from egoworld.worlds.generate import WorldSpec, generate

    model, what = load_demo_model(model_dir)
    c = model.config
    if c.height != c.width:
        raise ValueError(f"the demo world renders square frames; the model is {c.height}x{c.width}")
    out = Path(out)
    world_dir = out / f"world-seed{seed}"
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
        normalizer=model.normalizer,
        output="clip",
    ).get_clip(0)
    pred = model.rollout(
        clip.frames[0], clip.actions, normalized=True, seed=seed, num_inference_steps=steps, progress=True
    )  # [N, H, W, 3]
    gt = clip.frames[: len(pred)]
    write_video(out / "side_by_side.mp4", np.concatenate([gt, pred], axis=2), fps=5)
    write_video(out / "prediction.mp4", pred, fps=5)
    p, s = psnr(pred, gt), ssim(pred, gt)
    metrics = {
        "model": what,
        "world": str(world_dir),
        "frames": len(pred),
        "psnr": {f"frame_{h}": float(p[h]) for h in HORIZONS if h < len(pred)},
        "ssim": {f"frame_{h}": float(s[h]) for h in HORIZONS if h < len(pred)},
    }
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return metrics
