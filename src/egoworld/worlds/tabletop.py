"""Tabletop embodiment: a hand or gripper picks an object up and puts it down, seen from the head.

Per episode `<out>/<episode>/`: `frames/00000.png …`, `keypoints_3d.npy` float32 [T,K,3] world
metres, `keypoints_2d.npy` float32 [T,K,2] pixels (u right, v down), `keypoints_visible.npy`
bool [T,K], `effector.npy` float32 [T,8] (wrist xyz, quaternion wxyz, closure), `effector.json`
(the keypoint and frame convention, `hands.convention`), and `gt/` as for nav plus
`gt/object_poses.npy` float32 [T,M,7] for the M movable objects (xyz + wxyz).

Head camera (task option `camera`): "still" (default) stands behind the table with a few cm of
sway; "orbit" walks around the table (60-80 degrees of arc, either way round) and turns away from it
mid-episode, then back, so later frames see much that frame 0 does not (`orbit_head`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import mujoco
import numpy as np

from egoworld.worlds import hands, nav, scene
from egoworld.worlds.geometry import Attachment, eased_keyframes, quat_mul, yaw_quat
from egoworld.worlds.render import FrameRenderer, camera_intrinsics, project
from egoworld.worlds.tabletop_prompt import describe_episode

TABLE_HEIGHT = 0.75
HEAD = np.array([-0.5, 0.0, 1.3])  # camera position (metres) looking at the table
PITCH = -0.9  # camera pitch (rad, down < 0)
CAMERAS = ("still", "orbit")


def orbit_head(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Head path of the "orbit" camera: positions [T,3] and mocap quaternions (wxyz) [T,4].

    The head walks on a circle of radius |HEAD_xy| about the table centre, from HEAD through an arc
    of 60-80 degrees (direction random); its gaze faces the table centre plus a look-away turn of
    75-95 degrees (with a 0.35 rad lift of the head) that peaks mid-episode and returns to zero.
    """
    sign = 1.0 if rng.uniform() < 0.5 else -1.0
    arc, away = sign * rng.uniform(1.05, 1.4), -sign * rng.uniform(1.3, 1.65)
    s = np.linspace(0.0, 1.0, frames)
    walk = 0.5 - 0.5 * np.cos(np.pi * s)  # eased 0 -> 1
    look = np.sin(np.pi * s) ** 2  # 0 -> 1 -> 0
    radius, phi = float(np.hypot(*HEAD[:2])), np.pi + arc * walk
    pos = np.stack([radius * np.cos(phi), radius * np.sin(phi), np.full(frames, HEAD[2])], -1)
    yaw = phi + np.pi + away * look  # facing the centre, plus the look-away turn
    lift = -0.35 * look  # about the body y axis: negative raises the gaze
    quat = [
        quat_mul(yaw_quat(y), np.array([np.cos(a / 2), 0.0, np.sin(a / 2), 0.0])) for y, a in zip(yaw, lift)
    ]
    return pos, np.stack(quat)


def build_world(rng: np.random.Generator, textures, size: int, effector: str):
    """A room with a table, 2-4 movable objects on it, the head camera and the effector."""
    b = scene.SceneBuilder(rng, textures, size, size)
    _, free = scene.room(rng, textures, size, size, n_items=3, builder=b)
    b.static("work_table", scene.table(b, 0.9, 1.1, TABLE_HEIGHT))
    movable = []
    spots = [(-0.05, -0.25), (0.15, 0.05), (-0.1, 0.25), (0.25, -0.2)]
    order = rng.permutation(len(spots))[: int(rng.integers(2, 5))]
    for k, idx in enumerate(order):
        x, y = spots[idx]
        half = rng.uniform([0.03, 0.03, 0.03], [0.045, 0.045, 0.055])
        rgba = None  # a box is textured; a cylinder has one colour (the draws keep their order)
        if rng.uniform() < 0.6:
            shape, geom = "box", scene.box(half, material=b.material("object"))
        else:
            rgba = b.color()
            shape, geom = "cylinder", scene.cylinder(half[0], half[2], rgba=rgba)
        oid = b.movable(f"object_{k}", [geom], (x, y, TABLE_HEIGHT + half[2]))
        look = {"shape": shape, "rgb": None if rgba is None else [float(c) for c in rgba[:3]]}
        movable.append({"id": oid, "half_height": float(half[2]), "xy": (x, y), **look})
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
    pos, clo = eased_keyframes(times, points, s), eased_keyframes(times, closure, s)
    yaw = 0.15 * np.sin(np.linspace(0, np.pi, frames)) + rng.uniform(-0.2, 0.2)
    return pos, yaw, clo, k


class Episode:
    """One tabletop episode, planned on construction and rendered frame by frame by iterating it.

    Attributes: `world`, `model`, `K` [3,3], `objects` (objects.json), `effector_id`, `grasped`
    (index among the movable objects). Each iteration yields a dict with rgb [H,W,3], depth [H,W],
    instances [H,W], cam_to_world [4,4], keypoints_3d [K,3], keypoints_2d [K,2], keypoints_depth [K],
    keypoints_visible [K], object_poses [M,7] and effector [8].
    """

    def __init__(
        self,
        *,
        seed: int,
        index: int,
        frames: int,
        size: int,
        textures=None,
        effector: str = "hand",
        camera: str = "still",
    ):
        rng = nav.episode_rng(seed, index, f"tabletop-{effector}")
        self.world, self.model = build_world(rng, textures, size, effector)
        self.wrist, self.yaw, self.closure, self.grasped = script(rng, self.world, frames)
        self.head_sway = rng.uniform(-0.04, 0.04, size=2)
        # drawn last, and only for "orbit": the default episodes keep their random streams
        self.head = orbit_head(rng, frames) if camera == "orbit" else None
        self.frames, self.size, self.effector = frames, size, effector
        self.K = camera_intrinsics(self.model, "ego", size, size)
        self.objects = self.world.objects_json()
        self.effector_id = int(self.world.extras["effector_body"][1:].split("__")[0])

    def __iter__(self) -> Iterator[dict]:
        model, effector, k = self.model, self.effector, self.grasped
        data = mujoco.MjData(model)
        sites = [model.site(n).id for n in hands.keypoint_sites(effector)]
        joint_qpos = {n: model.joint(n).qposadr[0] for n in hands.closure_qpos(effector, 0.0)}
        movable = self.world.extras["movable"]
        objs = [model.joint(f"j_i{o['id']}__object_{i}").qposadr[0] for i, o in enumerate(movable)]
        eff = model.body(self.world.extras["effector_body"]).mocapid[0]
        adr = objs[k]
        grip: Attachment | None = None
        with FrameRenderer(model, self.size, self.size, "ego") as cam:
            for t in range(self.frames):
                s, sway = t / max(self.frames - 1, 1), self.head_sway
                if self.head is None:
                    data.mocap_pos[0] = HEAD + (0.0, sway[0] * np.sin(np.pi * s), sway[1] * s)
                    data.mocap_quat[0] = yaw_quat(0.1 * sway[0] * s)
                else:
                    data.mocap_pos[0], data.mocap_quat[0] = self.head[0][t], self.head[1][t]
                quat = yaw_quat(float(self.yaw[t]))
                data.mocap_pos[eff], data.mocap_quat[eff] = self.wrist[t], quat
                for name, q in hands.closure_qpos(effector, float(self.closure[t])).items():
                    data.qpos[joint_qpos[name]] = q
                # grasp: the object keeps its pose relative to the wrist while the effector is closed
                if self.closure[t] > 0.6 and grip is None:
                    obj_pos, obj_quat = data.qpos[adr : adr + 3], data.qpos[adr + 3 : adr + 7]
                    grip = Attachment.grasp(self.wrist[t], quat, obj_pos, obj_quat)
                elif self.closure[t] <= 0.6 and grip is not None:
                    grip = None
                    data.qpos[adr + 2] = TABLE_HEIGHT + movable[k]["half_height"]
                if grip is not None:
                    data.qpos[adr : adr + 3], data.qpos[adr + 3 : adr + 7] = grip.child_pose(
                        self.wrist[t], quat
                    )
                mujoco.mj_kinematics(model, data)
                mujoco.mj_camlight(model, data)
                frame, pose = cam.render(data), cam.pose(data)
                kp3 = data.site_xpos[sites].copy()  # [K, 3]
                uvz = project(kp3, self.K, pose)  # [K, 3]
                yield {
                    "rgb": frame.rgb,
                    "depth": frame.depth,
                    "instances": frame.instances,
                    "cam_to_world": pose,
                    "keypoints_3d": kp3,
                    "keypoints_2d": uvz[:, :2],
                    "keypoints_depth": uvz[:, 2],
                    "keypoints_visible": keypoints_visible(
                        uvz[:, :2], uvz[:, 2], frame.depth, frame.instances, self.effector_id
                    ),
                    "object_poses": np.stack([data.qpos[a : a + 7].copy() for a in objs]),
                    "effector": np.r_[self.wrist[t], quat, self.closure[t]],
                }


_IMAGES = ("rgb", "depth", "instances")
_PER_FRAME = (
    "cam_to_world",
    "keypoints_3d",
    "keypoints_2d",
    "keypoints_depth",
    "keypoints_visible",
    "object_poses",
    "effector",
)


def run_episode(
    out: Path | None,
    *,
    seed: int,
    index: int,
    frames: int,
    size: int,
    textures=None,
    effector: str = "hand",
    camera: str = "still",
) -> dict:
    """Render one episode.

    With `out`, frames and ground truth are streamed into `out/episode_XXXXX` as they are rendered
    (memory: one frame) and the returned dict holds only the small per-frame arrays ([T, ...]).
    With `out` None nothing is written and the dict also holds rgb [T,H,W,3], depth [T,H,W] and
    instances [T,H,W]. Both also hold K, effector_id, grasped, objects, frames and description
    (a sentence saying what the episode shows, `egoworld.worlds.tabletop_prompt`).
    """
    from egoworld.worlds import writers

    ep = Episode(
        seed=seed, index=index, frames=frames, size=size, textures=textures, effector=effector, camera=camera
    )
    keep = _PER_FRAME if out is not None else _PER_FRAME + _IMAGES
    acc: dict[str, list] = {key: [] for key in keep}
    with contextlib.ExitStack() as stack:
        if out is not None:
            folder = out / episode_name(index)
            (folder / "frames").mkdir(parents=True, exist_ok=True)
            gt = stack.enter_context(
                writers.GroundTruthWriter(folder / "gt", frames, (size, size), ep.K, ep.objects)
            )
        for t, f in enumerate(ep):
            for key in keep:
                acc[key].append(f[key])
            if out is not None:  # zero-padded names sort in time order
                writers.save_image(folder / "frames" / f"{t:05d}.png", f["rgb"])
                gt.add(f["depth"], f["instances"], f["cam_to_world"])
    result = {key: np.stack(val) for key, val in acc.items()}
    result.update(K=ep.K, effector_id=ep.effector_id, grasped=ep.grasped, objects=ep.objects, frames=frames)
    result["description"] = describe_episode(
        ep.world.extras["movable"], ep.grasped, result["object_poses"], result["cam_to_world"], effector
    )
    if out is not None:
        np.save(folder / "keypoints_3d.npy", result["keypoints_3d"].astype(np.float32))
        np.save(folder / "keypoints_2d.npy", result["keypoints_2d"].astype(np.float32))
        np.save(folder / "keypoints_visible.npy", result["keypoints_visible"])
        np.save(folder / "effector.npy", result["effector"].astype(np.float32))
        writers.write_json(folder / "effector.json", hands.convention(effector))
        np.save(folder / "gt" / "object_poses.npy", result["object_poses"].astype(np.float32))
    return result


def keypoints_visible(uv, z, depth_HW, instances_HW, effector_id: int, tolerance: float = 0.02) -> np.ndarray:
    """Visibility bool [K] of keypoints at pixels `uv` [K,2] with camera depth `z` [K] in one frame.

    Visible: in front of the camera (z > 0; a point behind it projects to a mirrored pixel), inside
    the image, and its pixel shows the effector or something no nearer than the keypoint (- `tolerance` m).
    """
    H, W = depth_HW.shape
    z = np.asarray(z, dtype=np.float64)
    px = np.rint(np.nan_to_num(np.asarray(uv, dtype=np.float64), nan=-1.0, posinf=-1.0, neginf=-1.0))
    px = px.clip(-1, max(H, W)).astype(int)
    inside = (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
    u, v = np.clip(px[:, 0], 0, W - 1), np.clip(px[:, 1], 0, H - 1)
    on_effector = instances_HW[v, u] == effector_id
    return inside & (z > 0) & (on_effector | (depth_HW[v, u] > z - tolerance))


def episode_name(index: int) -> str:
    return f"episode_{index:05d}"


# -- hooks used by egoworld.worlds.generate ---------------------------------------------------------


def validate_options(options: dict) -> None:
    unknown = set(options) - {"effector", "camera"}
    if unknown:
        raise ValueError(f"unknown tabletop options {sorted(unknown)}; expected 'effector' or 'camera'")
    if options.get("effector", "hand") not in hands.EFFECTORS:
        raise ValueError(f"unknown effector {options['effector']!r}; expected one of {hands.EFFECTORS}")
    if options.get("camera", "still") not in CAMERAS:
        raise ValueError(f"unknown camera {options['camera']!r}; expected one of {CAMERAS}")


def job_list(episodes: int) -> list[dict]:
    return [{"index": i} for i in range(episodes)]


def run_job(out: Path, **kwargs) -> dict:
    r = run_episode(out, **kwargs)
    return {"name": episode_name(kwargs["index"]), "frames": r["frames"], "grasped_object": r["grasped"]}


def finalize(out: Path, spec, results: list[dict]) -> dict:
    effector = spec.options.get("effector", "hand")
    return {
        "layout": "tabletop",
        "effector": effector,
        "fps": 30,
        "keypoints": hands.keypoint_sites(effector),
        "skeleton_edges": hands.skeleton_edges(effector),
        "effector_convention": hands.convention(effector),
    }
