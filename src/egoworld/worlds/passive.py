"""Passive video: unlabeled egocentric walks through many scenes, for pretraining video priors.

Each episode is a new room or yard, a random camera height and pitch, and a smooth random walk;
only `<out>/videos/<name>.mp4` is written (no actions, no ground truth).
"""

from __future__ import annotations

from pathlib import Path

from egoworld.worlds import nav


def episode_name(index: int) -> str:
    return f"video_{index:05d}"


def _episode(seed: int, index: int, frames: int, size: int, textures=None):
    rng = nav.episode_rng(seed, index, "passive")
    height, pitch = float(rng.uniform(0.6, 1.7)), float(rng.uniform(-0.4, 0.1))
    world, model = nav.build_world(rng, textures, size, height, pitch)
    return world, model, nav.plan(rng, frames, world.free_region, "random"), height


def render_episode(seed: int, index: int, frames: int, size: int, textures=None) -> dict:
    """Frames uint8 [T,H,W,3] (under "rgb") of one passive episode; deterministic in (seed, index)."""
    world, model, traj, height = _episode(seed, index, frames, size, textures)
    return nav.render_walk(world, model, traj, size, height, ground_truth=False)


def run_episode(out: Path, *, seed: int, index: int, frames: int, size: int, textures=None) -> dict:
    """Render one episode and stream it into `out/videos/video_XXXXX.mp4` (memory: one frame)."""
    from egoworld.worlds import writers

    world, model, traj, height = _episode(seed, index, frames, size, textures)
    name = episode_name(index)
    with writers.Mp4Writer(out / "videos" / f"{name}.mp4", size, size) as video:
        for frame, _ in nav.iter_walk(world, model, traj, size, height, ground_truth=False):
            video.write(frame.rgb)
    return {"name": name, "frames": frames, "codec": video.codec}


job_list = nav.job_list  # one job per episode, as nav


def run_job(out: Path, **kwargs) -> dict:
    return run_episode(out, **kwargs)


def finalize(out: Path, spec, results: list[dict]) -> dict:
    return {"layout": "videos", "fps": 30, "videos": [f"videos/{r['name']}.mp4" for r in results]}
