"""Humanoid embodiment: a wheeled humanoid drives to a table and picks an object up, seen from its head.

Written as 1X world model v2.0 raw shards (episodes 4 per shard, one segment id per episode):
`videos/video_{i}.mp4` (30 FPS), `robot_states/states_{i}.bin` float32 [N,25] little-endian,
`segment_indices/segment_idx_{i}.bin` int32 [N], `metadata/metadata_{i}.json`, `metadata.json`,
plus per-episode ground truth `gt/shard_{i}/episode_{j:05d}/` with the same files and schema as a
nav or tabletop `gt/` (depth, instances, rgb, cameras, objects, object_poses), frame t of episode j
being frame `first_frame + t` of the shard (see "ground_truth" in `metadata_{i}.json`).
Frames are streamed to the video and the ground truth as they are rendered (memory: one frame).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mujoco
import numpy as np

from egoworld.worlds import humanoid_model as hm
from egoworld.worlds import nav, scene
from egoworld.worlds.geometry import Attachment, eased_keyframes, yaw_quat
from egoworld.worlds.render import FrameRenderer, camera_intrinsics

HZ = 30
EPISODES_PER_SHARD = 4
TABLE_X = 1.25


def build_world(rng: np.random.Generator, textures, size: int):
    """A room with a table ahead of the robot, 2-4 movable objects on it, and the humanoid."""
    b = scene.SceneBuilder(rng, textures, size, size)
    _, free = scene.room(rng, textures, size, size, n_items=3, builder=b)
    height, hx, hy = float(rng.uniform(0.72, 0.8)), 0.35, 0.6
    b.static("work_table", scene.table(b, 2 * hx, 2 * hy, height), (TABLE_X, 0.0, 0.0))
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
    data.mocap_quat[0] = yaw_quat(0.0)
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
    times, s = np.array([kk[0] for kk in keys]), np.linspace(0, 1, frames)
    joints, closure, progress, yaw = (eased_keyframes(times, [kk[j] for kk in keys], s) for j in range(1, 5))
    base = start + progress[:, None] * (base_end - start)
    return joints, closure, base, yaw, side, k


def base_velocity(base_T2: np.ndarray, yaw_T: np.ndarray, hz: float = HZ) -> tuple[np.ndarray, np.ndarray]:
    """State dims 23/24 as 1X defines them: signed forward velocity (m/s) and yaw rate (rad/s), [T] each.

    The step t-1 -> t is projected on the heading at t-1 (driving backwards is negative; sideways
    drift does not count); row 0 is 0.
    """
    step = np.diff(np.asarray(base_T2, dtype=np.float64), axis=0)  # [T-1, 2]
    heading = np.stack([np.cos(yaw_T[:-1]), np.sin(yaw_T[:-1])], axis=1)  # [T-1, 2]
    forward = np.r_[0.0, np.sum(step * heading, axis=1)] * hz
    turn = np.r_[0.0, nav.wrap(np.diff(yaw_T))] * hz
    return forward, turn


class Episode:
    """One humanoid episode, planned on construction and rendered frame by frame by iterating it.

    Attributes: `states` float32 [T,25] (1X layout), `K` [3,3], `objects` (objects.json schema),
    `grasped` (index among the movable objects), `side` ('left'/'right') and, after iterating,
    `held` (the object was carried). Each iteration yields rgb [H,W,3], depth [H,W], instances [H,W],
    cam_to_world [4,4] and object_poses [M,7].
    """

    def __init__(self, seed: int, index: int, frames: int, size: int, textures=None):
        rng = nav.episode_rng(seed, index, "humanoid")
        self.world, self.model = build_world(rng, textures, size)
        self.data = mujoco.MjData(self.model)
        plan = script(rng, self.world, self.model, self.data, frames)
        self.joints, self.closure, self.base, self.yaw, self.side, self.grasped = plan
        forward, turn = base_velocity(self.base, self.yaw)
        self.states = np.concatenate(
            [self.joints, self.closure, forward[:, None], turn[:, None]], axis=1
        ).astype(np.float32)  # [T, 25]
        self.frames, self.size = frames, size
        self.K = camera_intrinsics(self.model, "ego", size, size)
        self.objects = self.world.objects_json()
        self.held = False

    def __iter__(self) -> Iterator[dict]:
        model, data, side, k = self.model, self.data, self.side, self.grasped
        kin = Kinematics(model)
        movable = self.world.extras["movable"]
        adr = [model.joint(f"j_i{o['id']}__object_{i}").qposadr[0] for i, o in enumerate(movable)]
        hand_body = model.body(self.world.extras["hands"][0 if side == "left" else 1]).id
        grip_site, closure_idx = kin.grip[side], 0 if side == "left" else 1
        grip: Attachment | None = None
        with FrameRenderer(model, self.size, self.size, "ego") as cam:
            for t in range(self.frames):
                data.mocap_pos[0] = (*self.base[t], 0.0)
                data.mocap_quat[0] = yaw_quat(self.yaw[t])
                kin.set(data, self.joints[t], self.closure[t])
                mujoco.mj_kinematics(model, data)
                hand_pos, hand_quat = data.xpos[hand_body].copy(), data.xquat[hand_body].copy()
                obj = data.qpos[adr[k] : adr[k] + 7]
                if (
                    grip is None
                    and self.closure[t, closure_idx] > 0.5
                    and np.linalg.norm(obj[:3] - data.site_xpos[grip_site]) < 0.15
                ):
                    grip = Attachment.grasp(hand_pos, hand_quat, obj[:3], obj[3:])
                if grip is not None:
                    data.qpos[adr[k] : adr[k] + 3], data.qpos[adr[k] + 3 : adr[k] + 7] = grip.child_pose(
                        hand_pos, hand_quat
                    )
                    mujoco.mj_kinematics(model, data)
                mujoco.mj_camlight(model, data)
                frame = cam.render(data)
                yield {
                    "rgb": frame.rgb,
                    "depth": frame.depth,
                    "instances": frame.instances,
                    "cam_to_world": cam.pose(data),
                    "object_poses": np.stack([data.qpos[a : a + 7].copy() for a in adr]),
                }
        self.held = grip is not None


def render_episode(seed: int, index: int, frames: int, size: int, textures=None) -> dict:
    """One episode in memory: rgb [T,H,W,3], depth, instances, cam_to_world, object_poses, states
    float32 [T,25], K, objects, grasped, side, held (deterministic in seed, index)."""
    ep = Episode(seed, index, frames, size, textures)
    per_frame = list(ep)
    result = {key: np.stack([f[key] for f in per_frame]) for key in per_frame[0]}
    result.update(
        K=ep.K, states=ep.states, objects=ep.objects, grasped=ep.grasped, side=ep.side, held=ep.held
    )
    return result


def episode_name(index: int) -> str:
    return f"episode_{index:05d}"


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
    """Render the episodes `indices` and stream them into shard `shard`."""
    from egoworld.worlds import writers

    states, grasps, ground_truth = [], [], []
    with writers.Mp4Writer(out / "videos" / f"video_{shard}.mp4", size, size, fps=HZ) as video:
        for n, i in enumerate(indices):
            ep = Episode(seed, i, frames, size, textures)
            rel = f"gt/shard_{shard}/{episode_name(i)}"
            poses = []
            with writers.GroundTruthWriter(out / rel, frames, (size, size), ep.K, ep.objects, rgb=True) as gt:
                for f in ep:
                    video.write(f["rgb"])
                    gt.add(f["depth"], f["instances"], f["cam_to_world"], f["rgb"])
                    poses.append(f["object_poses"])
            np.save(out / rel / "object_poses.npy", np.stack(poses).astype(np.float32))
            states.append(ep.states)
            grasps.append({"episode": i, "side": ep.side, "object_index": ep.grasped, "held": ep.held})
            ground_truth.append({"episode": i, "path": rel, "first_frame": n * frames, "frames": frames})
    states = np.concatenate(states).astype("<f4")  # [N, 25]
    segments = np.concatenate([np.full(frames, i, dtype="<i4") for i in indices])  # [N]
    (out / "robot_states").mkdir(parents=True, exist_ok=True)
    (out / "segment_indices").mkdir(parents=True, exist_ok=True)
    (out / "robot_states" / f"states_{shard}.bin").write_bytes(states.tobytes())
    (out / "segment_indices" / f"segment_idx_{shard}.bin").write_bytes(segments.tobytes())
    writers.write_json(
        out / "metadata" / f"metadata_{shard}.json",
        {
            "shard_num_frames": int(len(states)),
            "episodes": indices,
            "hz": HZ,
            "codec": video.codec,
            "grasps": grasps,
            "ground_truth": ground_truth,
        },
    )
    return {"shard": shard, "frames": int(len(states)), "episodes": indices}


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
            "velocity": "linear_velocity: signed forward m/s along the heading; angular_velocity: yaw rad/s",
            "ground_truth": "gt/shard_<i>/episode_<j:05d>/; see 'ground_truth' in metadata_<i>.json",
        },
    )
    return {"layout": "1x_v2_raw", "fps": HZ, "num_shards": len(results)}
