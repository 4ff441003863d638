"""`egoworld worlds generate --task tabletop --format egodex | plain`: synthetic tabletop episodes in
the two input layouts of `egoworld sim prepare` (the EgoDex layout, and the plain video layout of
`egoworld.sim.plain_video`), so that the preparation can be tested where the ground truth is known.

Output folder (--format egodex)::

    egoworld_world.json            what made it (as every generated world; options.format = "egodex")
    tabletop/<i>.mp4               the head-camera video (30 fps, MPEG-4 part 2 at q = 2)
    tabletop/<i>.hdf5              EgoDex keys (written with h5py, float32 as EgoDex stores them):
        camera/intrinsic           [3, 3]
        transforms/camera          [N, 4, 4] camera-to-world, OpenCV camera axes
        transforms/right<Joint>    [N, 4, 4] the 21 hand joints of `egoworld.sim.egodex.HAND_JOINTS`
                                   (position: the keypoint; rotation: the wrist's frame)
        transforms/rightForearm    [N, 4, 4] the end of the synthetic hand's 8 cm arm stub
        confidences/right<Joint>   [N] 1 where the keypoint is visible, 0 where it is hidden
        attrs: task, llm_description (what the episode shows, `egoworld.worlds.tabletop_prompt`)
    depth/tabletop/<i>.npy         ground-truth metric depth [N, H, W] float32 (the `--depth` layout
                                   of `sim prepare`; EgoDex itself has no depth)
    synthetic/episode_<i:05d>/     the same episode in the tabletop layout (frames, instance masks,
                                   depth, poses): ground truth for tests, not part of EgoDex

With --format plain, ``tabletop/<i>.hdf5`` is replaced by ``tabletop/<i>.npz`` (`np.savez`,
float64 computed from the float32 EgoDex values above, so both layouts describe the same numbers)::

    K                [3, 3]          camera/intrinsic
    hands            [N, 2, 21, 3]   the joints in each frame's camera coordinates (OpenCV axes);
                                     left hand NaN (left out with hands=False, `--no-hands`)
    hand_confidence  [N, 2, 21]      1 visible, 0 hidden (left hand 0; left out with `--no-hands`)
    cam_to_world     [N, 4, 4]       transforms/camera (left out with poses=False, `--no-poses`)
    prompt           []              the llm_description above, a unicode string

and ``depth/`` and ``synthetic/`` are as above (options.format = "plain", options.poses, and
options.hands = false with `--no-hands`). No forearm joint is written (the plain layout has none).
Without hands the files are the input of `egoworld sim estimate-hands`, with the ground-truth
depth beside them for its `--depth` and the ground-truth joints in ``synthetic/``.

The synthetic hand is a right hand (`egoworld.worlds.hands.convention`); no left-hand keys are
written. The world frame is turned from MuJoCo's z-up to ARKit's y-up (x kept, y_new = z,
z_new = −y), as EgoDex's world is gravity-aligned with y up. Only the tabletop hand can be
exported: a gripper has no EgoDex joints. The head camera option (`--camera still | orbit`) is
passed on to the tabletop renderer.
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
LAYOUTS = ("egodex", "plain")


def check_request(spec: WorldSpec, layout: str = "egodex", poses: bool = True, hands: bool = True) -> None:
    """ValueError unless `spec` can be written in `layout` (the tabletop hand; poses or hands left out
    only in the plain layout)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}; expected one of {LAYOUTS}")
    if spec.task != "tabletop":
        raise ValueError(
            f"--format {layout} writes hand episodes; got --task {spec.task}, expected --task tabletop"
        )
    if spec.options.get("effector", "hand") != "hand":
        raise ValueError(
            f"--format {layout} needs the hand effector (it stores hand joints); got --effector "
            f"{spec.options['effector']}"
        )
    if not poses and layout != "plain":
        raise ValueError(
            "--no-poses applies to --format plain (EgoDex files always hold camera poses); got --format "
            f"{layout}"
        )
    if not hands and layout != "plain":
        raise ValueError(
            "--no-hands applies to --format plain (EgoDex files always hold hand joints); got --format "
            f"{layout}"
        )
    validate(spec)


def _poses(positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """4x4 poses [N, 4, 4] in the y-up world from z-up positions [N, 3] and rotations [N, 3, 3]."""
    out = np.tile(np.eye(4), (len(positions), 1, 1))
    out[:, :3, :3] = Z_UP_TO_Y_UP @ rotations
    out[:, :3, 3] = positions @ Z_UP_TO_Y_UP.T
    return out


def episode_arrays(result: dict) -> dict[str, np.ndarray]:
    """The EgoDex values of one episode (from `tabletop.run_episode`'s result), float32 as EgoDex
    stores them, in the y-up world: K [3, 3], camera [N, 4, 4], joints [N, 21, 4, 4] (the right
    hand's, position = keypoint, rotation = wrist), visible [N, 21], forearm [N, 4, 4]."""
    from egoworld.worlds.geometry import quat_to_mat

    cams = result["cam_to_world"]  # [N, 4, 4] z-up world, OpenCV axes
    kp = result["keypoints_3d"]  # [N, 21, 3]
    wrist_R = np.stack([quat_to_mat(q) for q in result["effector"][:, 3:7]])  # [N, 3, 3]
    arm = kp[:, 0] - ARM_STUB * wrist_R[:, :, 0]
    f32 = np.float32
    return {
        "K": np.asarray(result["K"], dtype=f32),
        "camera": _poses(cams[:, :3, 3], cams[:, :3, :3]).astype(f32),
        "joints": np.stack([_poses(kp[:, k], wrist_R) for k in range(kp.shape[1])], 1).astype(f32),
        "visible": result["keypoints_visible"].astype(f32),
        "forearm": _poses(arm, wrist_R).astype(f32),
    }


def write_hdf5(path: Path, result: dict) -> None:
    """One episode's poses and hand joints (from `tabletop.run_episode`'s result) as EgoDex keys."""
    import h5py

    a = episode_arrays(result)
    with h5py.File(path, "w") as f:
        f.create_dataset(INTRINSIC_KEY, data=a["K"])
        f.create_dataset(CAMERA_KEY, data=a["camera"])
        for k, name in enumerate(joint_names(SIDE)):
            f.create_dataset(f"transforms/{name}", data=a["joints"][:, k])
            f.create_dataset(f"confidences/{name}", data=a["visible"][:, k])
        forearm = f"{SIDE}{FOREARM}"
        f.create_dataset(f"transforms/{forearm}", data=a["forearm"])
        f.create_dataset(f"confidences/{forearm}", data=np.ones(len(a["camera"]), np.float32))
        f.attrs["task"] = TASK_FOLDER
        f.attrs["llm_description"] = result["description"]


def write_plain(path: Path, result: dict, *, poses: bool = True, hands: bool = True) -> None:
    """One episode in the plain layout (`egoworld.sim.plain_video`): the values `write_hdf5` writes,
    with the hand joints in each frame's camera coordinates; `cam_to_world` only with `poses`,
    `hands` and `hand_confidence` only with `hands`."""
    from egoworld.sim.camera import world_to_camera
    from egoworld.sim.egodex import SIDES

    a = episode_arrays(result)
    cams = a["camera"].astype(np.float64)  # [N, 4, 4]
    world = a["joints"][:, :, :3, 3].astype(np.float64)  # [N, 21, 3]
    n, side = len(cams), SIDES.index(SIDE)
    arrays = {"K": a["K"].astype(np.float64)}
    if hands:
        joints = np.full((n, 2, 21, 3), np.nan)
        joints[:, side] = world_to_camera(world, cams)
        confidence = np.zeros((n, 2, 21))
        confidence[:, side] = a["visible"]
        arrays.update(hands=joints, hand_confidence=confidence)
    arrays["prompt"] = np.str_(result["description"])  # a unicode array: loads without pickle
    if poses:
        arrays["cam_to_world"] = cams
    np.savez(path, **arrays)


def export_episode(
    out: Path, *, index: int, layout: str = "egodex", poses: bool = True, hands: bool = True, **kwargs
) -> dict:
    """Render episode `index` into `out/synthetic/` and write its files in `layout` into `out`."""
    from egoworld.worlds import tabletop, writers

    result = tabletop.run_episode(out / SYNTHETIC_FOLDER, index=index, **kwargs)
    folder = out / SYNTHETIC_FOLDER / tabletop.episode_name(index)
    (out / TASK_FOLDER).mkdir(parents=True, exist_ok=True)
    size = int(kwargs["size"])
    with writers.Mp4Writer(out / TASK_FOLDER / f"{index}.mp4", size, size, fps=writers.FPS) as video:
        for png in sorted((folder / "frames").glob("*.png")):
            video.write(_read_rgb(png))
    if layout == "egodex":
        write_hdf5(out / TASK_FOLDER / f"{index}.hdf5", result)
    else:
        write_plain(out / TASK_FOLDER / f"{index}.npz", result, poses=poses, hands=hands)
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
    """Generate `spec` (tabletop, hand) into folder `out` in the EgoDex layout (`generate_recorded`)."""
    return generate_recorded(spec, out, layout="egodex", progress=progress)


def generate_recorded(
    spec: WorldSpec,
    out: str | Path,
    *,
    layout: str = "egodex",
    poses: bool = True,
    hands: bool = True,
    progress: bool = True,
) -> dict:
    """Generate `spec` (tabletop, hand) into folder `out` in `layout` ("egodex" | "plain"; `poses`
    False leaves cam_to_world out of the plain files, `hands` False hands and hand_confidence);
    returns the description with "status" ("created", or "unchanged" when `out` already holds the
    same dataset)."""
    from tqdm.auto import tqdm

    from egoworld.worlds import textures as tex

    check_request(spec, layout, poses, hands)
    out = Path(out)
    images = tex.load_folder(spec.textures) if spec.textures is not None else None
    desc = describe(spec, tex.digest(images) if images else "procedural")
    desc["options"] = {**desc["options"], "format": layout}
    if layout == "plain":
        desc["options"]["poses"] = bool(poses)
        if not hands:  # recorded only when left out: earlier plain datasets keep their identity
            desc["options"]["hands"] = False
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
    common.update(effector="hand", camera=spec.options.get("camera", "still"), layout=layout, poses=poses)
    common["hands"] = hands
    with atomic_dir(out) as tmp:
        jobs = [(str(tmp), {"index": i, **common}) for i in range(spec.episodes)]
        bar = tqdm(total=len(jobs), desc=f"worlds tabletop ({layout})", unit="episode", disable=not progress)
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
            "layout": layout,
            "fps": 30,
            "hand": SIDE,
            "world_up": "+y (MuJoCo's z-up world turned by Z_UP_TO_Y_UP)",
            "depth": f"{DEPTH_FOLDER}/{TASK_FOLDER}/<i>.npy, float32 [N, H, W] metres",
            "ground_truth": f"{SYNTHETIC_FOLDER}/episode_<i:05d>/ (tabletop layout)",
            "items": results,
        }
        if layout == "plain":
            desc["hands"] = (
                "camera coordinates of each frame (OpenCV axes)"
                if hands
                else "omitted (sim estimate-hands estimates them; ground truth in synthetic/)"
            )
            desc["cam_to_world"] = "y-up world" if poses else "omitted (sim prepare estimates them)"
        (tmp / WORLD_FILE).write_text(json.dumps(desc, indent=1) + "\n")
    log.info("wrote %d tabletop episodes in the %s layout to %s", spec.episodes, layout, out)
    return {**desc, "status": "created"}


__all__ = [
    "generate_egodex",
    "generate_recorded",
    "export_episode",
    "write_hdf5",
    "write_plain",
    "check_request",
]
