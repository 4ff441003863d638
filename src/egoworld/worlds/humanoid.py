"""Humanoid embodiment: a wheeled humanoid drives to a table and picks an object up, seen from its head.

Written as 1X world model v2.0 raw shards (episodes 4 per shard, one segment id per episode):
`videos/video_{i}.mp4` (30 FPS), `robot_states/states_{i}.bin` float32 [N,25] little-endian,
`segment_indices/segment_idx_{i}.bin` int32 [N], `metadata/metadata_{i}.json`, `metadata.json`,
plus ground truth `gt/shard_{i}/` (depth, instances, cameras, objects) and object poses.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from egoworld.worlds import humanoid_model as hm  # noqa: E402
from egoworld.worlds import nav, scene  # noqa: E402
from egoworld.worlds.render import FrameRenderer  # noqa: E402

HZ = 30
EPISODES_PER_SHARD = 4
TABLE_X = 1.25


def build_world(rng: np.random.Generator, textures, size: int):
    """A room with a table ahead of the robot, 2-4 movable objects on it, and the humanoid."""
    b = scene.SceneBuilder(rng, textures, size, size)
    _, free = scene.room(rng, textures, size, size, n_items=3, builder=b)
    height, hx, hy = float(rng.uniform(0.72, 0.8)), 0.35, 0.6
    legs = [
        scene.cylinder(
            0.03, height / 2, (sx * (hx - 0.05), sy * (hy - 0.05), height / 2), rgba=(0.3, 0.25, 0.2, 1)
        )
        for sx in (-1, 1)
        for sy in (-1, 1)
    ]
    top = scene.box((hx, hy, 0.02), (0, 0, height - 0.02), material=b.material("object"))
    b.static("work_table", [top, *legs], (TABLE_X, 0.0, 0.0))
    movable = []
    ys = rng.permutation(np.linspace(-0.35, 0.35, 4))[: int(rng.integers(2, 5))]
    for k, y in enumerate(ys):
        half = rng.uniform([0.03, 0.03, 0.035], [0.045, 0.045, 0.06])
        x = TABLE_X - hx + rng.uniform(0.1, 0.18)
        oid = b.movable(
            f"object_{k}", [scene.box(half, material=b.material("object"))], (x, y, height + half[2])
        )
        movable.append({"id": oid, "pos": (x, float(y), height + half[2]), "half_height": float(half[2])})
    _, robot = b.register("robot", "agent")
    _, left = b.register("left_hand", "agent")
    _, right = b.register("right_hand", "agent")
    b.raw(hm.humanoid_xml(robot, left, right))
    world = b.build(free, extras={"movable": movable, "table_height": height, "hands": (left, right)})
    return world, world.compile()


class Kinematics:
    """Joint addressing and a damped least-squares IK for one arm's grip site."""

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self.qadr = np.array([model.joint(n).qposadr[0] for n in hm.STATE_JOINTS])  # [21]
        self.dofadr = np.array([model.joint(n).dofadr[0] for n in hm.STATE_JOINTS])
        self.fingers = {
            s: [model.joint(f"{s}_finger{k}").qposadr[0] for k in range(2)] for s in ("left", "right")
        }
        self.grip = {s: model.site(f"{s}_grip").id for s in ("left", "right")}

    def set(self, data: mujoco.MjData, joints_21: np.ndarray, closure_lr) -> None:
        data.qpos[self.qadr] = joints_21
        for side, c in zip(("left", "right"), closure_lr):
            sign = 1 if side == "left" else -1
            data.qpos[self.fingers[side][0]] = sign * 1.2 * c
            data.qpos[self.fingers[side][1]] = -sign * 1.2 * c

    def reach(self, data, joints_21: np.ndarray, side: str, target, iters: int = 150) -> np.ndarray:
        """Arm joint angles (copy of `joints_21` with the `side` arm changed) putting the grip at `target`."""
        q = joints_21.copy()
        arm = np.arange(6, 13) if side == "left" else np.arange(13, 20)
        jac = np.zeros((3, self.model.nv))
        for _ in range(iters):
            data.qpos[self.qadr] = q
            mujoco.mj_kinematics(self.model, data)
            mujoco.mj_comPos(self.model, data)
            err = np.asarray(target) - data.site_xpos[self.grip[side]]
            if np.linalg.norm(err) < 1e-3:
                break
            mujoco.mj_jacSite(self.model, data, jac, None, self.grip[side])
            J = jac[:, self.dofadr[arm]]
            dq = J.T @ np.linalg.solve(J @ J.T + 1e-3 * np.eye(3), err)
            q[arm] = np.clip(q[arm] + np.clip(dq, -0.2, 0.2), -2.8, 2.8)
        return q


READY = np.zeros(21)
READY[[2, 20]] = (0.25, 0.3)  # hip pitch (lean), neck pitch (look down)
READY[[6, 9, 13, 16]] = (-0.8, -1.0, -0.8, -1.0)  # shoulders and elbows forward: hands in view


def script(rng, world, model, data, frames: int):
    """Per-frame joints [T,21], closures [T,2], base xy [T,2], base yaw [T], grasp side and object index."""
    kin = Kinematics(model)
    movable = world.extras["movable"]
    k = int(rng.integers(len(movable)))
    obj = np.array(movable[k]["pos"])
    side = "left" if obj[1] > 0 else "right"
    base_end = np.array([obj[0] - 0.42, 0.0])
    start = base_end - (float(rng.uniform(0.4, 0.8)), float(rng.uniform(-0.2, 0.2)))
    turn = float(rng.uniform(-0.4, 0.4))
    rest = READY * 0.3
    top = obj + (0, 0, movable[k]["half_height"] - 0.02)
    data.mocap_pos[0] = (*base_end, 0.0)
    data.mocap_quat[0] = nav.yaw_quat(0.0)
    above = kin.reach(data, READY, side, top + (0, 0, 0.15))
    grasp = kin.reach(data, above, side, top)
    lift = kin.reach(data, grasp, side, top + (0, 0, 0.2))
    c = (0.0, 0.0)
    closed = (1.0, 0.0) if side == "left" else (0.0, 1.0)
    keys = [  # (time, joints, closures, base progress, yaw)
        (0.0, rest, c, 0.0, 0.0),
        (0.3, READY, c, 1.0, 0.0),
        (0.45, above, c, 1.0, 0.0),
        (0.58, grasp, c, 1.0, 0.0),
        (0.66, grasp, closed, 1.0, 0.0),
        (0.85, lift, closed, 1.0, 0.0),
        (1.0, lift, closed, 1.0, turn),
    ]
    times = np.array([kk[0] for kk in keys])
    joints, closure, base, yaw = (
        np.zeros((frames, 21)),
        np.zeros((frames, 2)),
        np.zeros((frames, 2)),
        np.zeros(frames),
    )
    for t, u in enumerate(np.linspace(0, 1, frames)):
        i = min(int(np.searchsorted(times, u, side="right")) - 1, len(keys) - 2)
        a = 0.5 - 0.5 * np.cos(np.pi * (u - times[i]) / (times[i + 1] - times[i]))
        (_, q0, c0, p0, y0), (_, q1, c1, p1, y1) = keys[i], keys[i + 1]
        joints[t] = (1 - a) * q0 + a * q1
        closure[t] = (1 - a) * np.array(c0) + a * np.array(c1)
        base[t] = start + ((1 - a) * p0 + a * p1) * (base_end - start)
        yaw[t] = (1 - a) * y0 + a * y1
    return joints, closure, base, yaw, side, k


def render_episode(seed: int, index: int, frames: int, size: int, textures=None) -> dict:
    """Frames, 25-D states [T,25] float32 and ground truth of one episode (deterministic in seed, index)."""
    rng = nav.episode_rng(seed, index, "humanoid")
    world, model = build_world(rng, textures, size)
    data = mujoco.MjData(model)
    joints, closure, base, yaw, side, k = script(rng, world, model, data, frames)
    kin = Kinematics(model)
    movable = world.extras["movable"]
    adr = [model.joint(f"j_i{o['id']}__object_{i}").qposadr[0] for i, o in enumerate(movable)]
    hand_body = model.body(world.extras["hands"][0 if side == "left" else 1]).id
    grip = kin.grip[side]
    closure_idx = 0 if side == "left" else 1
    held, rel_pos, rel_mat = False, None, None
    out = {"rgb": [], "depth": [], "instances": [], "cam_to_world": [], "object_poses": []}
    with FrameRenderer(model, size, size, "ego") as cam:
        for t in range(frames):
            data.mocap_pos[0] = (*base[t], 0.0)
            data.mocap_quat[0] = nav.yaw_quat(yaw[t])
            kin.set(data, joints[t], closure[t])
            mujoco.mj_kinematics(model, data)
            hand_pos, hand_mat = data.xpos[hand_body].copy(), data.xmat[hand_body].reshape(3, 3).copy()
            obj = data.qpos[adr[k] : adr[k] + 7]
            if (
                not held
                and closure[t, closure_idx] > 0.5
                and np.linalg.norm(obj[:3] - data.site_xpos[grip]) < 0.15
            ):
                held = True
                obj_mat = np.zeros(9)
                mujoco.mju_quat2Mat(obj_mat, obj[3:])
                rel_pos, rel_mat = hand_mat.T @ (obj[:3] - hand_pos), hand_mat.T @ obj_mat.reshape(3, 3)
            if held:
                quat = np.zeros(4)
                mujoco.mju_mat2Quat(quat, (hand_mat @ rel_mat).ravel())
                data.qpos[adr[k] : adr[k] + 3] = hand_pos + hand_mat @ rel_pos
                data.qpos[adr[k] + 3 : adr[k] + 7] = quat
                mujoco.mj_kinematics(model, data)
            mujoco.mj_camlight(model, data)
            frame = cam.render(data)
            for key, val in (
                ("rgb", frame.rgb),
                ("depth", frame.depth),
                ("instances", frame.instances),
                ("cam_to_world", cam.pose(data)),
            ):
                out[key].append(val)
            out["object_poses"].append(np.stack([data.qpos[a : a + 7].copy() for a in adr]))
        K = cam.K
    result = {key: np.stack(val) for key, val in out.items()}
    lin = np.r_[0.0, np.linalg.norm(np.diff(base, axis=0), axis=1)] * HZ  # forward speed, m/s
    ang = np.r_[0.0, np.diff(yaw)] * HZ  # rad/s
    states = np.concatenate([joints, closure, lin[:, None], ang[:, None]], axis=1).astype(
        np.float32
    )  # [T, 25]
    result.update(K=K, states=states, objects=world.objects_json(), grasped=k, side=side, held=held)
    return result


# -- 1X v2.0 shards ---------------------------------------------------------------------------------


def job_list(episodes: int) -> list[dict]:
    return [
        {
            "shard": s,
            "indices": list(range(s * EPISODES_PER_SHARD, min(episodes, (s + 1) * EPISODES_PER_SHARD))),
        }
        for s in range(-(-episodes // EPISODES_PER_SHARD))
    ]


def run_job(
    out: Path, *, shard: int, indices: list[int], seed: int, frames: int, size: int, textures=None
) -> dict:
    """Render the episodes `indices` and write them as shard `shard`."""
    from egoworld.worlds import writers

    eps = [render_episode(seed, i, frames, size, textures) for i in indices]
    rgb = np.concatenate([e["rgb"] for e in eps])  # [N, H, W, 3]
    states = np.concatenate([e["states"] for e in eps]).astype("<f4")  # [N, 25]
    segments = np.concatenate([np.full(frames, i, dtype="<i4") for i in indices])  # [N]
    codec = writers.write_mp4(out / "videos" / f"video_{shard}.mp4", rgb, fps=HZ)
    (out / "robot_states").mkdir(parents=True, exist_ok=True)
    (out / "segment_indices").mkdir(parents=True, exist_ok=True)
    (out / "robot_states" / f"states_{shard}.bin").write_bytes(states.tobytes())
    (out / "segment_indices" / f"segment_idx_{shard}.bin").write_bytes(segments.tobytes())
    writers.write_json(
        out / "metadata" / f"metadata_{shard}.json",
        {
            "shard_num_frames": int(len(rgb)),
            "episodes": indices,
            "hz": HZ,
            "codec": codec,
            "grasps": [
                {"episode": i, "side": e["side"], "object_index": e["grasped"], "held": e["held"]}
                for i, e in zip(indices, eps)
            ],
        },
    )
    gt = out / "gt" / f"shard_{shard}"
    objects = {f"episode_{i}": e["objects"] for i, e in zip(indices, eps)}
    writers.write_ground_truth(
        gt,
        np.concatenate([e["depth"] for e in eps]),
        np.concatenate([e["instances"] for e in eps]),
        eps[0]["K"],
        np.concatenate([e["cam_to_world"] for e in eps]),
        objects,
        (size, size),
    )
    return {"shard": shard, "frames": int(len(rgb)), "episodes": indices}


def finalize(out: Path, spec, results: list[dict]) -> dict:
    from egoworld.worlds import writers

    total = sum(r["frames"] for r in results)
    writers.write_json(
        out / "metadata.json",
        {
            "num_shards": len(results),
            "hz": HZ,
            "image_size": [spec.size, spec.size],
            "num_images": total,
            "state_dim": hm.STATE_DIM,
            "state_names": hm.STATE_NAMES,
            "episodes_per_shard": EPISODES_PER_SHARD,
            "generator": "egoworld.worlds.humanoid",
        },
    )
    return {"layout": "1x_v2_raw", "fps": HZ, "num_shards": len(results)}
