"""Navigation embodiment: a camera at fixed height moving with 3-DoF steps (forward, lateral, yaw).

Action convention (NWM): the step from t-1 to t is expressed in the robot frame at t-1,
(dx, dy) = R(-yaw[t-1]) (p[t] - p[t-1]) / spacing and dyaw = wrap(yaw[t] - yaw[t-1]) in [-pi, pi).
Poses are produced by integrating exactly those commanded steps, so the reader recovers them
(`egoworld.actions.spaces.nav_deltas`). Saved actions follow the project's clip convention:
[T, 3] with `actions[t]` moving frame t-1 to frame t and `actions[0] = 0`.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egoworld.worlds.geometry import yaw_quat

log = logging.getLogger(__name__)

SPACING = 0.15  # metres per unit of normalised (dx, dy): `metric_waypoint_spacing`
CAMERA_HEIGHT = 1.2  # metres
FOVY = 70.0  # degrees
SCRIPTS = ("random", "explore", "circle", "square", "look")


def wrap(angle):
    """Angles wrapped into [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


@dataclass
class Trajectory:
    """Poses and the steps that made them: position [T,2] m, yaw [T] rad, steps [T-1,3] (m, m, rad)."""

    position: np.ndarray
    yaw: np.ndarray
    steps: np.ndarray


def integrate(start_xy, start_yaw: float, steps_T3: np.ndarray) -> Trajectory:
    """Apply robot-frame steps [T-1, 3] = (dx m, dy m, dyaw rad) from a start pose."""
    T = len(steps_T3) + 1
    position, yaw = np.zeros((T, 2)), np.zeros(T)
    position[0], yaw[0] = start_xy, wrap(start_yaw)
    for t in range(1, T):
        c, s = np.cos(yaw[t - 1]), np.sin(yaw[t - 1])
        dx, dy, dth = steps_T3[t - 1]
        position[t] = position[t - 1] + (c * dx - s * dy, s * dx + c * dy)
        yaw[t] = wrap(yaw[t - 1] + dth)
    return Trajectory(position, yaw, np.asarray(steps_T3, dtype=np.float64))


def _inside(p, region, margin=0.0) -> bool:
    return (
        region[0] + margin <= p[0] <= region[1] - margin and region[2] + margin <= p[1] <= region[3] - margin
    )


def random_trajectory(rng: np.random.Generator, frames: int, region) -> Trajectory:
    """A smooth random walk that stays inside `region` = (xmin, xmax, ymin, ymax)."""
    start = np.array([rng.uniform(region[0], region[1]), rng.uniform(region[2], region[3])]) * 0.5
    start += 0.5 * np.array([(region[0] + region[1]) / 2, (region[2] + region[3]) / 2])
    yaw0 = float(rng.uniform(-np.pi, np.pi))
    pos, yaw = start.copy(), yaw0
    fwd, lat, turn = SPACING, 0.0, 0.0
    steps = np.zeros((frames - 1, 3))
    centre = np.array([(region[0] + region[1]) / 2, (region[2] + region[3]) / 2])
    for t in range(frames - 1):
        # Ornstein-Uhlenbeck controls: smooth in time.
        fwd += 0.2 * (SPACING * rng.uniform(0.6, 1.3) - fwd) + 0.01 * rng.normal()
        lat += -0.3 * lat + 0.008 * rng.normal()
        turn += -0.2 * turn + 0.03 * rng.normal()
        ahead = pos + 1.0 * np.array([np.cos(yaw), np.sin(yaw)])
        if not _inside(ahead, region, 0.1):
            to_centre = np.arctan2(*(centre - pos)[::-1])
            turn = float(np.clip(0.5 * wrap(to_centre - yaw), -0.25, 0.25))
        step = np.array([max(fwd, 0.0), lat, np.clip(turn, -0.3, 0.3)])
        c, s = np.cos(yaw), np.sin(yaw)
        nxt = pos + (c * step[0] - s * step[1], s * step[0] + c * step[1])
        if not _inside(nxt, region):
            step[:2] = 0.0  # turn in place
            nxt = pos
        steps[t] = step
        pos, yaw = nxt, float(wrap(yaw + step[2]))
    return integrate(start, yaw0, steps)


# Segments of an 'explore' walk: (forward m, lateral m, yaw rad) ranges per step, drawn once per segment.
EXPLORE_MOVES = {
    "straight": ((0.1, 0.5), (0.0, 0.0), (0.0, 0.0)),
    "turn": ((0.0, 0.0), (0.0, 0.0), (0.09, 0.35)),  # in place, 5-20 deg per step, either side
    "arc": ((0.1, 0.3), (0.0, 0.0), (0.05, 0.2)),
    "strafe": ((0.0, 0.1), (0.05, 0.25), (0.0, 0.0)),  # either side
}


def explore_trajectory(rng: np.random.Generator, frames: int, region) -> Trajectory:
    """A walk of 3-8-step segments, each a constant command drawn from `EXPLORE_MOVES`.

    Wider than the 'random' walk (turns up to 20 deg and steps up to 0.5 m per frame, strafes), so a
    model trained on it sees every command the README and `egoworld play` send. Steps that would
    leave `region` become turns in place, like the random walk's.
    """
    start = np.array([(region[0] + region[1]) / 2, (region[2] + region[3]) / 2])
    start += rng.uniform(-0.25, 0.25, 2) * (region[1] - region[0], region[3] - region[2])
    yaw0 = float(rng.uniform(-np.pi, np.pi))
    pos, yaw = start.copy(), yaw0
    steps = np.zeros((frames - 1, 3))
    names = sorted(EXPLORE_MOVES)
    t = 0
    while t < frames - 1:
        fwd, lat, turn = EXPLORE_MOVES[names[rng.integers(len(names))]]
        step = np.array([rng.uniform(*fwd), rng.uniform(*lat), rng.uniform(*turn)])
        step[1:] *= rng.choice([-1.0, 1.0], 2)
        for _ in range(int(rng.integers(3, 9))):
            if t == frames - 1:
                break
            c, s = np.cos(yaw), np.sin(yaw)
            nxt = pos + (c * step[0] - s * step[1], s * step[0] + c * step[1])
            taken = step.copy()
            if not _inside(nxt, region, 0.2):
                taken[:2], taken[2] = 0.0, 0.3 * np.sign(step[2] or 1.0)  # turn away in place
                nxt = pos
            steps[t] = taken
            pos, yaw, t = nxt, float(wrap(yaw + taken[2])), t + 1
    return integrate(start, yaw0, steps)


LOOK_RATE = (0.035, 0.175)  # rad per step of a 'look' segment: 2-10 deg, either side


def look_trajectory(rng: np.random.Generator, frames: int, region) -> Trajectory:
    """Turning in place only: 3-8-step segments of a constant yaw rate drawn from `LOOK_RATE`.

    The camera never moves, so the action alone decides how the view changes (issue 14's diagnostic:
    how many steps does the action path need to learn at all?); at <= 10 deg per frame a 70 deg view
    keeps most of its content for several frames.
    """
    start = np.array([(region[0] + region[1]) / 2, (region[2] + region[3]) / 2])
    start += rng.uniform(-0.3, 0.3, 2) * (region[1] - region[0], region[3] - region[2])
    steps = np.zeros((frames - 1, 3))
    t = 0
    while t < frames - 1:
        rate = rng.uniform(*LOOK_RATE) * rng.choice([-1.0, 1.0])
        n = min(int(rng.integers(3, 9)), frames - 1 - t)
        steps[t : t + n, 2] = rate
        t += n
    return integrate(start, float(rng.uniform(-np.pi, np.pi)), steps)


def scripted_trajectory(name: str, frames: int, region) -> Trajectory:
    """A scripted path sized to `region`: 'circle' (constant turn) or 'square' (straight + 90 deg turns)."""
    centre = np.array([(region[0] + region[1]) / 2, (region[2] + region[3]) / 2])
    half = 0.8 * min(region[1] - region[0], region[3] - region[2]) / 2
    steps = np.zeros((frames - 1, 3))
    if name == "circle":
        arc = min(SPACING, 2 * np.pi * half / max(frames - 1, 1))
        steps[:] = (arc, 0.0, arc / half)
        return integrate(centre + (0.0, -half), 0.0, steps)
    if name == "square":
        side, turn_steps = 2 * half, 6
        per_side = max(int(side / SPACING), 1)
        pattern = [(side / per_side, 0.0, 0.0)] * per_side + [
            (0.0, 0.0, (np.pi / 2) / turn_steps)
        ] * turn_steps
        for t in range(frames - 1):
            steps[t] = pattern[t % len(pattern)]
        return integrate(centre - half, 0.0, steps)
    raise ValueError(f"unknown trajectory {name!r}; expected one of {SCRIPTS}")


def plan(rng: np.random.Generator, frames: int, region, trajectory: str = "random") -> Trajectory:
    """The trajectory an episode follows ('random' uses `rng`; scripted ones are fixed)."""
    if frames < 2:
        raise ValueError(f"a navigation episode needs at least 2 frames; got {frames}")
    if trajectory == "random":
        return random_trajectory(rng, frames, region)
    if trajectory == "explore":
        return explore_trajectory(rng, frames, region)
    if trajectory == "look":
        return look_trajectory(rng, frames, region)
    return scripted_trajectory(trajectory, frames, region)


def commanded_actions(traj: Trajectory, spacing: float = SPACING) -> np.ndarray:
    """The commanded steps as normalised NWM actions [T, 3] = (dx/spacing, dy/spacing, dyaw).

    Clip convention (`egoworld.data.clip.Clip`): row t moves frame t-1 to frame t; row 0 is zero.
    """
    out = np.zeros((len(traj.steps) + 1, 3))
    out[1:] = traj.steps
    out[1:, :2] /= spacing
    out[1:, 2] = wrap(out[1:, 2])
    return out


def agent_xml(height: float = CAMERA_HEIGHT, pitch: float = 0.0, fovy: float = FOVY) -> str:
    """A mocap body 'agent' (x forward, z up) carrying the camera 'ego', pitched by `pitch` rad (down < 0)."""
    cp, sp = np.cos(pitch), np.sin(pitch)
    # camera x (right) = -y_body; camera y (up) = z_body rotated by pitch about the body y axis
    up = (-sp, 0.0, cp)
    return (
        f'<body name="agent" mocap="true" pos="0 0 {height:.4f}">'
        f'<camera name="ego" xyaxes="0 -1 0 {up[0]:.6f} {up[1]:.6f} {up[2]:.6f}" fovy="{fovy:.3f}"/></body>'
    )


def episode_rng(seed: int, index: int, task: str) -> np.random.Generator:
    """The generator for one episode: depends on (seed, episode index, task) only.

    The task enters as its CRC-32, so different task names (anagrams included) get different streams.
    """
    return np.random.default_rng([int(seed), int(index), zlib.crc32(task.encode())])


def build_world(rng: np.random.Generator, textures, size: int, height: float, pitch: float = 0.0):
    """A random room or yard with the navigation agent; returns (Scene, MjModel)."""
    from egoworld.worlds import scene as scn

    builder, free = scn.random_scene(rng, textures, size, size)
    builder.raw(agent_xml(height, pitch))
    world = builder.build(free)
    return world, world.compile()


def iter_walk(
    world, model, traj: Trajectory, size: int, height: float, ground_truth: bool = True
) -> Iterator[tuple]:
    """Render the camera along `traj` one frame at a time: yields (render.Frame, cam_to_world [4,4])."""
    import mujoco

    from egoworld.worlds.render import FrameRenderer

    data = mujoco.MjData(model)
    with FrameRenderer(model, size, size, "ego") as cam:
        for (x, y), yaw in zip(traj.position, traj.yaw):
            data.mocap_pos[0] = (x, y, height)
            data.mocap_quat[0] = yaw_quat(yaw)
            mujoco.mj_forward(model, data)
            yield cam.render(data, ground_truth=ground_truth), cam.pose(data)


def render_walk(world, model, traj: Trajectory, size: int, height: float, ground_truth: bool = True) -> dict:
    """Render the camera along `traj` into memory (the dataset writers stream with `iter_walk` instead).

    Returns rgb [T,H,W,3], depth [T,H,W], instances [T,H,W], K [3,3] and cam_to_world [T,4,4].
    """
    from egoworld.worlds.render import camera_intrinsics

    frames, poses = zip(*iter_walk(world, model, traj, size, height, ground_truth))
    return {
        "rgb": np.stack([f.rgb for f in frames]),
        "depth": np.stack([f.depth for f in frames]),
        "instances": np.stack([f.instances for f in frames]),
        "K": camera_intrinsics(model, "ego", size, size),
        "cam_to_world": np.stack(poses),
    }


def episode_name(index: int) -> str:
    return f"traj_{index:05d}"


def plan_episode(seed: int, index: int, frames: int, size: int, textures=None, trajectory: str = "random"):
    """Rebuild an episode's world and trajectory without rendering: (Scene, MjModel, Trajectory)."""
    rng = episode_rng(seed, index, "nav")
    world, model = build_world(rng, textures, size, CAMERA_HEIGHT)
    return world, model, plan(rng, frames, world.free_region, trajectory)


def run_episode(
    out: Path, *, seed: int, index: int, frames: int, size: int, textures=None, trajectory: str = "random"
) -> dict:
    """Render and write one NWM trajectory folder `out/traj_XXXXX` with its `gt/` ground truth.

    Frames are streamed to disk as they are rendered (JPEG for the NWM layout, plus the lossless
    `gt/rgb.npy`), so memory does not grow with `frames` or `size`.
    """
    from egoworld.worlds import writers
    from egoworld.worlds.render import camera_intrinsics

    world, model, traj = plan_episode(seed, index, frames, size, textures, trajectory)
    folder = out / episode_name(index)
    folder.mkdir(parents=True, exist_ok=True)
    K = camera_intrinsics(model, "ego", size, size)
    with writers.GroundTruthWriter(
        folder / "gt", frames, (size, size), K, world.objects_json(), rgb=True
    ) as gt:
        for t, (frame, pose) in enumerate(iter_walk(world, model, traj, size, CAMERA_HEIGHT)):
            writers.save_image(folder / f"{t}.jpg", frame.rgb)
            gt.add(frame.depth, frame.instances, pose, frame.rgb)
    writers.write_pickle(
        folder / "traj_data.pkl",
        {"position": traj.position.astype(np.float64), "yaw": traj.yaw.astype(np.float64)},
    )
    np.save(folder / "gt" / "actions.npy", commanded_actions(traj).astype(np.float32))
    return {"name": folder.name, "frames": frames, "scene": world.kind}


# -- hooks used by egoworld.worlds.generate ---------------------------------------------------------

DATASET_NAME = "egoworld_nav"


def validate_options(options: dict) -> None:
    unknown = set(options) - {"trajectory"}
    if unknown:
        raise ValueError(f"unknown nav options {sorted(unknown)}; expected only 'trajectory'")
    if options.get("trajectory", "random") not in SCRIPTS:
        raise ValueError(f"unknown trajectory {options['trajectory']!r}; expected one of {SCRIPTS}")


def job_list(episodes: int) -> list[dict]:
    return [{"index": i} for i in range(episodes)]


def run_job(out: Path, **kwargs) -> dict:
    return run_episode(out, **kwargs)


def finalize(out: Path, spec, results: list[dict]) -> dict:
    """Write `data_splits/egoworld_nav/{train,test}/traj_names.txt` (`write_splits`)."""
    return {
        **write_splits(out, [r["name"] for r in results], DATASET_NAME),
        "actions": "gt/actions.npy float32 [T,3]: row t moves frame t-1 to t (robot frame at t-1), row 0 = 0",
        "lossless_rgb": "gt/rgb.npy (the .jpg frames are JPEG quality 95)",
    }


def write_splits(out: Path, names: list[str], dataset_name: str) -> dict:
    """Write `data_splits/<dataset_name>/{train,test}/traj_names.txt` (the last ~10% is test) and
    return the description every nav-layout dataset shares (layout, name, spacing, fps).

    With a single trajectory both splits list it (the readers need a non-empty split), so the
    test split is not held out; a warning says so.
    """
    if len(names) == 1:
        log.warning(
            "this nav dataset has one trajectory (%s): it is both the train and the test split, so "
            "evaluation on it is not held out; generate --episodes 2 or more for a separate test split",
            names[0],
        )
    n_test = max(1, round(0.1 * len(names))) if len(names) > 1 else 0
    train, test = names[: len(names) - n_test], names[len(names) - n_test :] or names
    for split, items in (("train", train), ("test", test)):
        path = out / "data_splits" / dataset_name / split / "traj_names.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{n}\n" for n in items))
    return {
        "layout": "nwm",
        "dataset_name": dataset_name,
        "metric_waypoint_spacing": SPACING,
        "camera_height": CAMERA_HEIGHT,
        "fps": 30,
    }
