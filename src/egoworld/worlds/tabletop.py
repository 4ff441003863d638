"""Tabletop embodiment: a hand or gripper picks an object up and puts it down, seen from the head.

Per episode `<out>/<episode>/`: `frames/00000.png …`, `keypoints_3d.npy` float32 [T,K,3] world
metres, `keypoints_2d.npy` float32 [T,K,2] pixels (u right, v down), `keypoints_visible.npy`
bool [T,K], `effector.npy` float32 [T,8] (wrist xyz, quaternion wxyz, closure), and `gt/` as for
nav plus `gt/object_poses.npy` float32 [T,M,7] for the M movable objects (xyz + wxyz).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from egoworld.worlds import hands, nav, scene  # noqa: E402
from egoworld.worlds.render import FrameRenderer, project  # noqa: E402

TABLE_HEIGHT = 0.75
HEAD = np.array([-0.5, 0.0, 1.3])  # camera position (metres) looking at the table
PITCH = -0.9  # camera pitch (rad, down < 0)


def _smooth(a: float) -> float:
    return 0.5 - 0.5 * np.cos(np.pi * float(np.clip(a, 0, 1)))


def build_world(rng: np.random.Generator, textures, size: int, effector: str):
    """A room with a table, 2-4 movable objects on it, the head camera and the effector."""
    b = scene.SceneBuilder(rng, textures, size, size)
    _, free = scene.room(rng, textures, size, size, n_items=3, builder=b)
    hx, hy = 0.45, 0.55
    b.static(
        "work_table",
        [
            scene.box((hx, hy, 0.02), (0, 0, TABLE_HEIGHT - 0.02), material=b.material("object")),
            *[
                scene.cylinder(
                    0.03,
                    TABLE_HEIGHT / 2,
                    (sx * (hx - 0.05), sy * (hy - 0.05), TABLE_HEIGHT / 2),
                    rgba=(0.3, 0.25, 0.2, 1),
                )
                for sx in (-1, 1)
                for sy in (-1, 1)
            ],
        ],
    )
    movable = []
    spots = [(-0.05, -0.25), (0.15, 0.05), (-0.1, 0.25), (0.25, -0.2)]
    order = rng.permutation(len(spots))[: int(rng.integers(2, 5))]
    for k, idx in enumerate(order):
        x, y = spots[idx]
        half = rng.uniform([0.03, 0.03, 0.03], [0.045, 0.045, 0.055])
        geom = (
            scene.box(half, material=b.material("object"))
            if rng.uniform() < 0.6
            else scene.cylinder(half[0], half[2], rgba=b.color())
        )
        oid = b.movable(f"object_{k}", [geom], (x, y, TABLE_HEIGHT + half[2]))
        movable.append({"id": oid, "half_height": float(half[2]), "xy": (x, y)})
    b.raw(nav.agent_xml(0.0, PITCH, fovy=60.0))
    _, body = b.register(effector, "agent")
    b.raw(hands.effector_xml(effector, body))
    world = b.build(free, extras={"movable": movable, "effector_body": body})
    return world, world.compile()


def _keyframes(rng, target_xy, place_xy, top: float):
    """Wrist waypoints (xyz), closures and phase ends in [0, 1] for reach, grasp, carry, release, retract."""
    back = np.array([-0.075, 0.0])  # wrist sits behind the grasp point (palm centre is ahead of it)
    start = np.array([-0.3, rng.uniform(-0.25, 0.05), TABLE_HEIGHT + 0.25])
    above = np.r_[np.asarray(target_xy) + back, top + 0.1]
    grasp = np.r_[np.asarray(target_xy) + back, top + 0.01]
    lift = np.r_[np.asarray(place_xy) + back, top + 0.12]
    place = np.r_[np.asarray(place_xy) + back, top + 0.01]
    points = [start, above, grasp, grasp, lift, place, place, np.r_[place[:2] + (-0.15, 0), top + 0.2]]
    closure = [0, 0, 0, 1, 1, 1, 0, 0]
    times = np.array([0, 0.2, 0.32, 0.42, 0.6, 0.72, 0.82, 1.0])
    return np.array(points), np.array(closure, float), times


def script(rng: np.random.Generator, world, frames: int):
    """Wrist positions [T,3], yaw [T], closure [T] and the index of the object to grasp."""
    movable = world.extras["movable"]
    k = int(rng.integers(len(movable)))
    obj = movable[k]
    place = (float(rng.uniform(-0.2, 0.25)), float(rng.uniform(-0.35, 0.35)))
    top = TABLE_HEIGHT + 2 * obj["half_height"] - 0.03
    points, closure, times = _keyframes(rng, obj["xy"], place, top)
    s = np.linspace(0, 1, frames)
    pos, clo = np.zeros((frames, 3)), np.zeros(frames)
    for t, u in enumerate(s):
        i = min(int(np.searchsorted(times, u, side="right")) - 1, len(times) - 2)
        a = _smooth((u - times[i]) / (times[i + 1] - times[i]))
        pos[t] = (1 - a) * points[i] + a * points[i + 1]
        clo[t] = (1 - a) * closure[i] + a * closure[i + 1]
    yaw = 0.15 * np.sin(np.linspace(0, np.pi, frames)) + rng.uniform(-0.2, 0.2)
    return pos, yaw, clo, k


def run_episode(
    out: Path | None, *, seed: int, index: int, frames: int, size: int, textures=None, effector: str = "hand"
) -> dict:
    """Render one episode; write it under `out/episode_XXXXX` (or only return arrays if `out` is None)."""
    rng = nav.episode_rng(seed, index, f"tabletop-{effector}")
    world, model = build_world(rng, textures, size, effector)
    wrist, yaw, closure, k = script(rng, world, frames)
    head_sway = rng.uniform(-0.04, 0.04, size=2)
    data = mujoco.MjData(model)
    sites = [model.site(n).id for n in hands.keypoint_sites(effector)]
    joint_qpos = {n: model.joint(n).qposadr[0] for n in hands.closure_qpos(effector, 0.0)}
    objs = [
        model.joint(f"j_i{o['id']}__object_{i}").qposadr[0] for i, o in enumerate(world.extras["movable"])
    ]
    eff = model.body(world.extras["effector_body"]).mocapid[0]
    held, offset = False, None
    rgb, depth, inst, poses, kp3, obj_poses, eff_state = [], [], [], [], [], [], []
    with FrameRenderer(model, size, size, "ego") as cam:
        for t in range(frames):
            s = t / max(frames - 1, 1)
            data.mocap_pos[0] = HEAD + (0.0, head_sway[0] * np.sin(np.pi * s), head_sway[1] * s)
            data.mocap_quat[0] = nav.yaw_quat(0.1 * head_sway[0] * s)
            quat = nav.yaw_quat(float(yaw[t]))
            data.mocap_pos[eff], data.mocap_quat[eff] = wrist[t], quat
            for name, q in hands.closure_qpos(effector, float(closure[t])).items():
                data.qpos[joint_qpos[name]] = q
            # grasp: the object follows the wrist rigidly while the effector is closed
            adr = objs[k]
            if closure[t] > 0.6 and not held:
                held, offset = True, data.qpos[adr : adr + 3] - wrist[t]
                offset = _rot(-yaw[t]) @ offset
            elif closure[t] <= 0.6 and held:
                held = False
                data.qpos[adr + 2] = TABLE_HEIGHT + world.extras["movable"][k]["half_height"]
            if held:
                data.qpos[adr : adr + 3] = wrist[t] + _rot(yaw[t]) @ offset
                data.qpos[adr + 3 : adr + 7] = quat
            mujoco.mj_kinematics(model, data)
            mujoco.mj_camlight(model, data)
            frame = cam.render(data)
            rgb.append(frame.rgb)
            depth.append(frame.depth)
            inst.append(frame.instances)
            poses.append(cam.pose(data))
            kp3.append(data.site_xpos[sites].copy())
            obj_poses.append(np.stack([data.qpos[a : a + 7].copy() for a in objs]))
            eff_state.append(np.r_[wrist[t], quat, closure[t]])
        K = cam.K
    kp3 = np.stack(kp3)  # [T, K, 3]
    poses = np.stack(poses)
    uvz = np.stack([project(p, K, c) for p, c in zip(kp3, poses)])  # [T, K, 3]
    result = {
        "rgb": np.stack(rgb),
        "depth": np.stack(depth),
        "instances": np.stack(inst),
        "K": K,
        "cam_to_world": poses,
        "keypoints_3d": kp3,
        "keypoints_2d": uvz[..., :2],
        "keypoints_depth": uvz[..., 2],
        "object_poses": np.stack(obj_poses),
        "effector": np.stack(eff_state),
        "effector_id": int(world.extras["effector_body"][1:].split("__")[0]),
        "grasped": k,
        "objects": world.objects_json(),
    }
    result["keypoints_visible"] = _visible(result)
    if out is not None:
        _write(out / episode_name(index), result, size)
    return result


def _rot(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _visible(r: dict) -> np.ndarray:
    """Keypoints inside the image whose pixel shows the effector or lies behind them."""
    T, Kp, _ = r["keypoints_2d"].shape
    H, W = r["depth"].shape[1:]
    uv = np.rint(r["keypoints_2d"]).astype(int)
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
    u, v = np.clip(uv[..., 0], 0, W - 1), np.clip(uv[..., 1], 0, H - 1)
    t = np.arange(T)[:, None]
    on_effector = r["instances"][t, v, u] == r["effector_id"]
    return inside & (on_effector | (r["depth"][t, v, u] > r["keypoints_depth"] - 0.02))


def episode_name(index: int) -> str:
    return f"episode_{index:05d}"


def _write(folder: Path, r: dict, size: int) -> None:
    from egoworld.worlds import writers

    writers.write_images(folder / "frames", r["rgb"], ".png")
    for t in range(len(r["rgb"])):  # zero-padded names sort in time order
        (folder / "frames" / f"{t}.png").rename(folder / "frames" / f"{t:05d}.png")
    np.save(folder / "keypoints_3d.npy", r["keypoints_3d"].astype(np.float32))
    np.save(folder / "keypoints_2d.npy", r["keypoints_2d"].astype(np.float32))
    np.save(folder / "keypoints_visible.npy", r["keypoints_visible"])
    np.save(folder / "effector.npy", r["effector"].astype(np.float32))
    writers.write_ground_truth(
        folder / "gt", r["depth"], r["instances"], r["K"], r["cam_to_world"], r["objects"], (size, size)
    )
    np.save(folder / "gt" / "object_poses.npy", r["object_poses"].astype(np.float32))


# -- hooks used by egoworld.worlds.generate ---------------------------------------------------------


def validate_options(options: dict) -> None:
    unknown = set(options) - {"effector"}
    if unknown:
        raise ValueError(f"unknown tabletop options {sorted(unknown)}; expected only 'effector'")
    if options.get("effector", "hand") not in hands.EFFECTORS:
        raise ValueError(f"unknown effector {options['effector']!r}; expected one of {hands.EFFECTORS}")


def job_list(episodes: int) -> list[dict]:
    return [{"index": i} for i in range(episodes)]


def run_job(out: Path, **kwargs) -> dict:
    r = run_episode(out, **kwargs)
    return {"name": episode_name(kwargs["index"]), "frames": len(r["rgb"]), "grasped_object": r["grasped"]}


def finalize(out: Path, spec, results: list[dict]) -> dict:
    effector = spec.options.get("effector", "hand")
    return {
        "layout": "tabletop",
        "effector": effector,
        "fps": 30,
        "keypoints": hands.keypoint_sites(effector),
        "skeleton_edges": hands.skeleton_edges(effector),
    }
