"""Turning in place in front of any picture: navigation walks with exact frames and no 3D scene.

A camera that only rotates moves every pixel by the homography K R K⁻¹, whatever the depth of what
it sees. So a picture, taken as a wide view (`PICTURE_FOV`), gives the exact frames of the nav
camera (`nav.FOVY`) turning left and right inside it; past the picture's edge the view continues as
its mirror image (OpenCV's BORDER_REFLECT_101), which makes one consistent wide scene. Each episode
stands in front of one picture of `--textures` and turns by up to `MAX_YAW` each way, at the nav
walks' turning rates, with pauses in which nothing moves. A world model trained on these walks sees
pictures of any kind kept still and slid the right way, which its synthetic rooms do not show it.

The folders are the NWM layout of `egoworld.worlds.nav` (frames, `traj_data.pkl`,
`gt/actions.npy`, the spacing) without depth or masks, which a picture does not have.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egoworld.sim.camera import intrinsics_from_fov
from egoworld.worlds import nav
from egoworld.worlds.render import intrinsics

NEEDS_TEXTURES = True  # the pictures come from --textures
DATASET_NAME = "egoworld_turns"
PICTURE_FOV = 100.0  # degrees across the picture's width when it is seen as a wide view
MAX_YAW = np.deg2rad(30.0)  # how far the walks turn each way: the view reaches 15° past the picture
TURN_RATE = np.deg2rad((5.0, 20.0))  # per frame, the range of the nav `explore` walks' turns
SUPERSAMPLE = 2  # frames are warped at this multiple of the size, then area-averaged


def yaw_path(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Yaw [T] (radians; positive = turned left, NWM) of one walk: runs of 2-8 frames, each a turn at
    5-20° per frame or (one in four) a pause. A run turns back toward the centre the more likely the
    farther the walk has turned, and stops at ±MAX_YAW (the rest of the run is a pause)."""
    yaw = np.zeros(frames)
    t = 1
    while t < frames:
        run = int(rng.integers(2, 9))
        rate = 0.0 if rng.random() < 0.25 else float(rng.uniform(*TURN_RATE))
        back = 0.5 + 0.5 * abs(yaw[t - 1]) / MAX_YAW  # chance of turning toward the centre
        direction = -np.sign(yaw[t - 1]) if rng.random() < back and yaw[t - 1] != 0 else rng.choice((-1, 1))
        for _ in range(min(run, frames - t)):
            step = direction * rate if abs(yaw[t - 1] + direction * rate) <= MAX_YAW else 0.0
            yaw[t] = yaw[t - 1] + step
            t += 1
    return yaw


def view(picture_HW3: np.ndarray, yaw: float, size: int) -> np.ndarray:
    """The nav camera's uint8 [size, size, 3] view, turned `yaw` rad left of the centre of a picture
    seen `PICTURE_FOV` degrees wide."""
    import cv2

    side = size * SUPERSAMPLE
    k_view = intrinsics(nav.FOVY, side, side)  # the nav camera's vertical field of view (square)
    k_picture = intrinsics_from_fov(picture_HW3.shape[1], picture_HW3.shape[0], PICTURE_FOV)
    c, s = np.cos(yaw), np.sin(yaw)
    turn = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])  # a ray of the turned camera -> picture's
    homography = k_picture @ turn @ np.linalg.inv(k_view)  # view pixel -> picture pixel
    frame = cv2.warpPerspective(
        picture_HW3,
        homography,
        (side, side),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def run_episode(out: Path, *, seed: int, index: int, frames: int, size: int, textures) -> dict:
    """Write one NWM trajectory folder `out/traj_XXXXX`: frames, traj_data.pkl, gt/actions.npy."""
    from egoworld.worlds import writers

    rng = nav.episode_rng(seed, index, "turns")
    picture = int(rng.integers(len(textures)))
    steps = np.zeros((frames - 1, 3))
    steps[:, 2] = np.diff(yaw_path(rng, frames))  # turns in place: no (dx, dy)
    traj = nav.integrate((0.0, 0.0), 0.0, steps)
    folder = out / nav.episode_name(index)
    (folder / "gt").mkdir(parents=True, exist_ok=True)
    for t, angle in enumerate(traj.yaw):
        writers.save_image(folder / f"{t}.jpg", view(textures[picture], float(angle), size))
    writers.write_pickle(folder / "traj_data.pkl", {"position": traj.position, "yaw": traj.yaw})
    np.save(folder / "gt" / "actions.npy", nav.commanded_actions(traj).astype(np.float32))
    return {"name": folder.name, "frames": frames, "picture": picture}


# -- hooks used by egoworld.worlds.generate ---------------------------------------------------------


job_list = nav.job_list  # one job per episode, as nav


def run_job(out: Path, **kwargs) -> dict:
    return run_episode(out, **kwargs)


def finalize(out: Path, spec, results: list[dict]) -> dict:
    """The nav task's splits and description, under this dataset's name."""
    desc = nav.write_splits(out, [r["name"] for r in results], DATASET_NAME)
    return {
        **desc,
        "picture_fov_deg": PICTURE_FOV,
        "max_yaw_deg": float(np.rad2deg(MAX_YAW)),
        "actions": "gt/actions.npy float32 [T,3]: (0, 0, dyaw); row t turns frame t-1 to t, row 0 = 0",
    }
