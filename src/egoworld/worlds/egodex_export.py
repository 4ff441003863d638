"""`egoworld worlds generate --task tabletop --format egodex`: synthetic tabletop episodes in the
EgoDex layout, so that `egoworld sim prepare` can be tested where the ground truth is known.

Output folder::

    egoworld_world.json            what made it (as every generated world; options.format = "egodex")
    tabletop/<i>.mp4               the head-camera video (30 fps, MPEG-4 part 2 at q = 2)
    tabletop/<i>.hdf5              EgoDex keys (written with h5py, float32 as EgoDex stores them):
        camera/intrinsic           [3, 3]
        transforms/camera          [N, 4, 4] camera-to-world, OpenCV camera axes
        transforms/right<Joint>    [N, 4, 4] the 21 hand joints of `egoworld.sim.egodex.HAND_JOINTS`
                                   (position: the keypoint; rotation: the wrist's frame)
        transforms/rightForearm    [N, 4, 4] the end of the synthetic hand's 8 cm arm stub
        confidences/right<Joint>   [N] 1 where the keypoint is visible, 0 where it is hidden
        attrs: task, llm_description
    depth/tabletop/<i>.npy         ground-truth metric depth [N, H, W] float32 (the `--depth` layout
                                   of `sim prepare`; EgoDex itself has no depth)
    synthetic/episode_<i:05d>/     the same episode in the tabletop layout (frames, instance masks,
                                   depth, poses): ground truth for tests, not part of EgoDex

The synthetic hand is a right hand (`egoworld.worlds.hands.convention`); no left-hand keys are
written. The world frame is turned from MuJoCo's z-up to ARKit's y-up (x kept, y_new = z,
z_new = −y), as EgoDex's world is gravity-aligned with y up. Only the tabletop hand can be
exported: a gripper has no EgoDex joints.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import shutil
from pathlib import Path

import numpy as np

from egoworld.io_utils import atomic_dir
from egoworld.sim.egodex import CAMERA_KEY, FOREARM, INTRINSIC_KEY, joint_names
from egoworld.worlds.generate import WORLD_FILE, WorldSpec, dataset_identity, describe, existing, validate

log = logging.getLogger(__name__)

TASK_FOLDER = "tabletop"
DEPTH_FOLDER = "depth"
SYNTHETIC_FOLDER = "synthetic"
SIDE = "right"  # the synthetic hand's handedness
ARM_STUB = 0.08  # metres behind the wrist along −x of the hand frame (worlds.hands.hand_xml's arm capsule)
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # MuJoCo world → ARKit world
DESCRIPTION = "Pick up an object on the table with the right hand and put it down elsewhere."


def check_request(spec: WorldSpec) -> None:
    """ValueError unless `spec` can be written in the EgoDex layout (the tabletop hand)."""
    if spec.task != "tabletop":
        raise ValueError(
            f"--format egodex writes hand episodes; got --task {spec.task}, expected --task tabletop"
        )
    if spec.options.get("effector", "hand") != "hand":
        raise ValueError(
            f"--format egodex needs the hand effector (EgoDex stores hand joints); got --effector "
            f"{spec.options['effector']}"
        )
    validate(spec)


def _poses(positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """4x4 poses [N, 4, 4] in the y-up world from z-up positions [N, 3] and rotations [N, 3, 3]."""
    out = np.tile(np.eye(4), (len(positions), 1, 1))
    out[:, :3, :3] = Z_UP_TO_Y_UP @ rotations
    out[:, :3, 3] = positions @ Z_UP_TO_Y_UP.T
    return out


def write_hdf5(path: Path, result: dict) -> None:
    """One episode's poses and hand joints (from `tabletop.run_episode`'s result) as EgoDex keys."""
    import h5py

    from egoworld.worlds.geometry import quat_to_mat

    cams = result["cam_to_world"]  # [N, 4, 4] z-up world, OpenCV axes
    kp = result["keypoints_3d"]  # [N, 21, 3]
    visible = result["keypoints_visible"]  # [N, 21]
    wrist_R = np.stack([quat_to_mat(q) for q in result["effector"][:, 3:7]])  # [N, 3, 3]
    arm = kp[:, 0] - ARM_STUB * wrist_R[:, :, 0]
    f32 = np.float32
    with h5py.File(path, "w") as f:
        f.create_dataset(INTRINSIC_KEY, data=np.asarray(result["K"], dtype=f32))
        f.create_dataset(CAMERA_KEY, data=_poses(cams[:, :3, 3], cams[:, :3, :3]).astype(f32))
        for k, name in enumerate(joint_names(SIDE)):
            f.create_dataset(f"transforms/{name}", data=_poses(kp[:, k], wrist_R).astype(f32))
            f.create_dataset(f"confidences/{name}", data=visible[:, k].astype(f32))
        forearm = f"{SIDE}{FOREARM}"
        f.create_dataset(f"transforms/{forearm}", data=_poses(arm, wrist_R).astype(f32))
        f.create_dataset(f"confidences/{forearm}", data=np.ones(len(cams), f32))
        f.attrs["task"] = TASK_FOLDER
        f.attrs["llm_description"] = DESCRIPTION


def export_episode(out: Path, *, index: int, **kwargs) -> dict:
    """Render episode `index` into `out/synthetic/` and write its EgoDex files into `out`."""
    from egoworld.worlds import tabletop, writers

    result = tabletop.run_episode(out / SYNTHETIC_FOLDER, index=index, **kwargs)
    folder = out / SYNTHETIC_FOLDER / tabletop.episode_name(index)
    (out / TASK_FOLDER).mkdir(parents=True, exist_ok=True)
    size = int(kwargs["size"])
    with writers.Mp4Writer(out / TASK_FOLDER / f"{index}.mp4", size, size, fps=writers.FPS) as video:
        for png in sorted((folder / "frames").glob("*.png")):
            video.write(_read_rgb(png))
    write_hdf5(out / TASK_FOLDER / f"{index}.hdf5", result)
    depth = out / DEPTH_FOLDER / TASK_FOLDER / f"{index}.npy"
    depth.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "gt" / "depth.npy", depth)
    return {"name": f"{TASK_FOLDER}/{index}", "frames": int(result["frames"]), "synthetic": str(folder.name)}


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _run_job(job: tuple[str, dict]) -> dict:
    out, kwargs = job
    return export_episode(Path(out), **kwargs)


def generate_egodex(spec: WorldSpec, out: str | Path, *, progress: bool = True) -> dict:
    """Generate `spec` (tabletop, hand) into folder `out` in the EgoDex layout; returns the description
    with "status" ("created", or "unchanged" when `out` already holds the same dataset)."""
    from tqdm.auto import tqdm

    from egoworld.worlds import textures as tex

    check_request(spec)
    out = Path(out)
    images = tex.load_folder(spec.textures) if spec.textures is not None else None
    desc = describe(spec, tex.digest(images) if images else "procedural")
    desc["options"] = {**desc["options"], "format": "egodex"}
    old = existing(out)
    if old is not None:
        if dataset_identity(old) == dataset_identity(desc):
            return {**old, "status": "unchanged"}
        diff = {k: (old.get(k), v) for k, v in dataset_identity(desc).items() if old.get(k) != v}
        raise FileExistsError(
            f"output folder {str(out)!r} already holds a different dataset "
            f"(field: (existing, requested) = {diff}); choose another --out (nothing was overwritten)"
        )
    common = {"seed": spec.seed, "frames": spec.frames, "size": spec.size, "textures": images}
    common["effector"] = "hand"
    with atomic_dir(out) as tmp:
        jobs = [(str(tmp), {"index": i, **common}) for i in range(spec.episodes)]
        bar = tqdm(total=len(jobs), desc="worlds tabletop (egodex)", unit="episode", disable=not progress)
        results = []
        if spec.workers == 1:
            for job in jobs:
                results.append(_run_job(job))
                bar.update()
        else:
            with mp.get_context("spawn").Pool(min(spec.workers, len(jobs))) as pool:
                for result in pool.imap(_run_job, jobs):
                    results.append(result)
                    bar.update()
        bar.close()
        desc = {
            **desc,
            "layout": "egodex",
            "fps": 30,
            "hand": SIDE,
            "world_up": "+y (MuJoCo's z-up world turned by Z_UP_TO_Y_UP)",
            "depth": f"{DEPTH_FOLDER}/{TASK_FOLDER}/<i>.npy, float32 [N, H, W] metres",
            "ground_truth": f"{SYNTHETIC_FOLDER}/episode_<i:05d>/ (tabletop layout)",
            "items": results,
        }
        (tmp / WORLD_FILE).write_text(json.dumps(desc, indent=1) + "\n")
    log.info("wrote %d tabletop episodes in the EgoDex layout to %s", spec.episodes, out)
    return {**desc, "status": "created"}


__all__ = ["generate_egodex", "export_episode", "write_hdf5", "check_request"]
