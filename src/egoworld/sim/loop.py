"""The closed loop (EgoSim Fig. 2): S_{k−1} ─Π→ scene video + mask; H_k → skeleton video; O → clip; U → S_k.

`EgoSim(state, model, K)` is a gym-like environment for agents:

    sim.reset(state)                         # S_0 (and optionally the current observation)
    video = sim.step(camera_poses, action)   # one clip of `model.config.num_frames` frames
    video = sim.run(actions, clips=K)        # K clips, each from the state updated by the last

An action is hand keypoints `[T, 21, 3]` / `[T, 2, 21, 3]` (world metres, OpenPose order) or a
`GripperAction` (poses `[T, 4, 4]` + opening `[T]`). Consecutive clips share their boundary
frame: clip k covers global frames k(T−1) … k(T−1)+T−1, and its first frame is the last
generated frame of clip k−1 (known to the model, as the Wan InP first frame).

The state update U needs per-frame depth, camera poses and masks of the generated clip; they come
from a pluggable backend (`egoworld.sim.backends`, re-exported here):

- `GroundTruthBackend` (synthetic worlds): the generating episode's depth, poses and instance masks.
- `StateRenderBackend` (always available): the static TSDF's depth along the commanded poses, the
  state's objects and the hands (from their 3-D keypoints) masked; no objects move (colour-only).
- `EstimatedBackend`: Depth Anything (transformers, local weights) aligned per frame to metric depth,
  Open3D RGB-D odometry on it, hand masks from the keypoints (+ SAM 2), SAM 2 (local checkpoint)
  prompted at the hand contact; raises `FileNotFoundError` without the weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egoworld.sim.backends import (  # noqa: F401  (re-exported: the loop's public names)
    ClipRequest,
    EstimatedBackend,
    GroundTruthBackend,
    Reconstruction,
    ReconstructionBackend,
    StateRenderBackend,
    update_from_reconstruction,
)
from egoworld.sim.camera import backproject, validate_intrinsics, validate_poses
from egoworld.sim.hands import _as_hands, draw_gripper_skeletons, draw_hand_skeletons
from egoworld.sim.render import Rendering, render_state
from egoworld.sim.state import EPISODE_VOXEL_SIZE, SceneState, StateConfig
from egoworld.sim.update import UpdateReport

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- actions


@dataclass
class GripperAction:
    """A parallel gripper per frame: `poses` `[T, 4, 4]` gripper-to-world (z along the fingers,
    y across the jaws) and `opening` `[T]` metres between the fingertips."""

    poses: np.ndarray
    opening: np.ndarray

    def __len__(self) -> int:
        return len(self.poses)

    def __getitem__(self, sl: slice) -> GripperAction:
        return GripperAction(self.poses[sl], self.opening[sl])


def gripper_from_keypoints(kp: np.ndarray) -> GripperAction:
    """The tabletop gripper's 3 keypoints `[T, 3, 3]` (wrist, thumb-side tip, index-side tip) as a
    `GripperAction` (z from the wrist to the tips' midpoint, y from the thumb tip to the index tip)."""
    kp = np.asarray(kp, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (3, 3):
        raise ValueError(f"gripper keypoints have shape {list(kp.shape)}; expected [T, 3, 3]")
    wrist, a, b = kp[:, 0], kp[:, 1], kp[:, 2]
    z = (a + b) / 2 - wrist
    z /= np.linalg.norm(z, axis=1, keepdims=True).clip(1e-9)
    y = b - a
    y -= (y * z).sum(1, keepdims=True) * z
    y /= np.linalg.norm(y, axis=1, keepdims=True).clip(1e-9)
    x = np.cross(y, z)
    poses = np.tile(np.eye(4), (len(kp), 1, 1))
    poses[:, :3, 0], poses[:, :3, 1], poses[:, :3, 2], poses[:, :3, 3] = x, y, z, wrist
    return GripperAction(poses, np.linalg.norm(b - a, axis=1))


def check_action(action: Any, frames: int) -> np.ndarray | GripperAction:
    """Validate an action for `frames` frames: hand keypoints → `[T, A, 21, 3]`, or a GripperAction."""
    if isinstance(action, GripperAction):
        poses = validate_poses(action.poses)
        opening = np.asarray(action.opening, dtype=np.float64)
        if poses.shape != (frames, 4, 4) or opening.shape != (frames,):
            raise ValueError(
                f"gripper action has poses {list(poses.shape)} and opening {list(opening.shape)}; "
                f"expected [{frames}, 4, 4] and [{frames}]"
            )
        return GripperAction(poses, opening)
    hands = _as_hands(action)
    if len(hands) != frames:
        raise ValueError(f"hand keypoints cover {len(hands)} frames; expected {frames}")
    return hands


def action_video(
    action: np.ndarray | GripperAction, K: np.ndarray, poses: np.ndarray, height: int, width: int
) -> np.ndarray:
    """The skeleton video `[T, H, W, 3]` uint8 of an action seen from the camera path."""
    if isinstance(action, GripperAction):
        return draw_gripper_skeletons(action.poses, action.opening, K, poses, height, width)
    return draw_hand_skeletons(action, K, poses, height, width)


def _keypoints_world(action: np.ndarray | GripperAction) -> np.ndarray:
    """`[T, A, 21, 3]` keypoints of any action (a gripper as its thumb + index chains)."""
    if isinstance(action, GripperAction):
        from egoworld.sim.hands import gripper_to_hand_keypoints

        return gripper_to_hand_keypoints(action.poses, action.opening)[:, None]
    return action


# --------------------------------------------------------------------------- synthetic episodes


@dataclass
class TabletopEpisode:
    """One `egoworld worlds generate --task tabletop` episode, loaded (see docs/worlds.md)."""

    rgb: np.ndarray  # [N, H, W, 3] uint8
    depth: np.ndarray  # [N, H, W] float32 metres
    instances: np.ndarray  # [N, H, W] int
    K: np.ndarray  # [3, 3]
    cam_to_world: np.ndarray  # [N, 4, 4]
    keypoints_3d: np.ndarray  # [N, Kp, 3]
    object_poses: np.ndarray  # [N, M, 7]
    movable_ids: list[int]  # instance id of each of the M movable objects
    effector_id: int
    effector: str  # "hand" | "gripper"

    @classmethod
    def load(cls, folder: str | Path) -> TabletopEpisode:
        folder = Path(folder)
        gt = folder / "gt"
        needed = [gt / "depth.npy", gt / "instances.npy", gt / "cameras.json", gt / "objects.json"]
        needed += [folder / "keypoints_3d.npy", gt / "object_poses.npy"]
        missing = [str(p) for p in needed if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder} is not a tabletop episode: missing {missing} (expected the layout of "
                "`egoworld worlds generate --task tabletop`)"
            )
        frames = sorted((folder / "frames").glob("*.png"))
        if not frames:
            raise FileNotFoundError(f"{folder / 'frames'} holds no PNG frames; expected one PNG per frame")
        rgb = np.stack([_read_png(p) for p in frames])
        cams = _json_keys(gt / "cameras.json", ("K", "cam_to_world"))
        objects = _json_keys(gt / "objects.json", ("objects",))["objects"]
        try:
            movable = sorted(
                (int(k) for k, v in objects.items() if v["kind"] == "movable"),
                key=lambda i: objects[str(i)]["name"],
            )
            agents = [(int(k), v["name"]) for k, v in objects.items() if v["kind"] == "agent"]
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"{gt / 'objects.json'}: 'objects' must map integer ids to {{'kind', 'name'}} ({err!r})"
            ) from err
        if not agents:
            raise ValueError(f"{gt / 'objects.json'} names no agent (the hand or gripper)")
        kp = _load_npy(folder / "keypoints_3d.npy")
        episode = cls(
            rgb=rgb,
            depth=_load_npy(gt / "depth.npy"),
            instances=_load_npy(gt / "instances.npy").astype(np.int64),
            K=np.asarray(cams["K"], dtype=np.float64),
            cam_to_world=np.asarray(cams["cam_to_world"], dtype=np.float64),
            keypoints_3d=kp,
            object_poses=_load_npy(gt / "object_poses.npy"),
            movable_ids=movable,
            effector_id=agents[0][0],
            effector="gripper" if kp.ndim == 3 and kp.shape[1] == 3 else "hand",
        )
        episode._check_lengths(folder)
        return episode

    def _check_lengths(self, folder: Path) -> None:
        n, (h, w) = len(self.rgb), self.rgb.shape[1:3]
        expected = {
            "gt/depth.npy": (self.depth, (n, h, w)),
            "gt/instances.npy": (self.instances, (n, h, w)),
            "keypoints_3d.npy": (self.keypoints_3d, (n, None, 3)),
            "gt/cameras.json cam_to_world": (self.cam_to_world, (n, 4, 4)),
        }
        for name, (array, shape) in expected.items():
            if array.ndim != len(shape) or any(e is not None and a != e for a, e in zip(array.shape, shape)):
                raise ValueError(
                    f"{folder / name.split()[0]} has shape {tuple(array.shape)}; expected {shape} "
                    f"for {n} frames of {h}x{w} (None: any)"
                )
        if self.K.shape != (3, 3):
            raise ValueError(f"{folder / 'gt/cameras.json'}: K has shape {self.K.shape}; expected (3, 3)")

    def __len__(self) -> int:
        return len(self.rgb)

    def action(self, frames: np.ndarray | slice) -> np.ndarray | GripperAction:
        """The recorded action of some frames: hand keypoints `[T, 21, 3]` or a GripperAction."""
        kp = self.keypoints_3d[frames].astype(np.float64)
        return gripper_from_keypoints(kp) if self.effector == "gripper" else kp

    def moved_objects(self, frames: np.ndarray, min_shift: float = 0.005) -> list[int]:
        """Movable instance ids whose position changes by more than `min_shift` metres over `frames`."""
        xyz = self.object_poses[frames][:, :, :3]  # [T, M, 3]
        shift = np.linalg.norm(xyz - xyz[:1], axis=-1).max(0)
        return [self.movable_ids[m] for m in np.nonzero(shift > min_shift)[0]]


def state_from_frames(
    rgb: np.ndarray,  # [N, H, W, 3] uint8
    depth: np.ndarray,  # [N, H, W] float32
    instances: np.ndarray,  # [N, H, W] int
    K: np.ndarray,  # [3, 3]
    cam_to_world: np.ndarray,  # [N, 4, 4]
    *,
    object_ids: list[int] = (),
    ignore_ids: list[int] = (),
    config: StateConfig | None = None,
) -> SceneState:
    """S_0 from RGB-D frames: the static scene TSDF-fused (object and ignored pixels left out) and
    each object id as its own point set (pose = translation to its centroid)."""
    state = SceneState(config or StateConfig(voxel_size=EPISODE_VOXEL_SIZE))
    rgb, depth, instances = np.asarray(rgb), np.asarray(depth), np.asarray(instances)
    poses = validate_poses(cam_to_world).reshape(-1, 4, 4)
    dynamic = np.isin(instances, list(object_ids) + list(ignore_ids))
    for t in range(len(rgb)):
        state.integrate(rgb[t], depth[t], K, poses[t], ignore_mask=dynamic[t])
    for oid in object_ids:
        pts, cols = [], []
        for t in range(len(rgb)):
            sel = (instances[t] == oid) & (depth[t] > 0)
            pts.append(backproject(depth[t], K)[sel] @ poses[t][:3, :3].T + poses[t][:3, 3])
            cols.append(rgb[t][sel])
        pts = np.concatenate(pts)
        if len(pts) == 0:
            continue
        pose = np.eye(4)
        pose[:3, 3] = pts.mean(0)
        state.add_object(int(oid), pts - pose[:3, 3], np.concatenate(cols), pose)
    return state


def episode_state(episode: TabletopEpisode, frame: int = 0, config: StateConfig | None = None) -> SceneState:
    """S_0 of an episode: its frame `frame` fused with ground-truth depth, the effector left out."""
    sl = slice(frame, frame + 1)
    return state_from_frames(
        episode.rgb[sl],
        episode.depth[sl],
        episode.instances[sl],
        episode.K,
        episode.cam_to_world[sl],
        object_ids=episode.movable_ids,
        ignore_ids=[episode.effector_id],
        config=config,
    )


def observation_clip(
    episode: TabletopEpisode,
    start: int,
    frames: int,
    *,
    config: StateConfig | None = None,
    render_method: str = "raycast",
) -> dict[str, np.ndarray]:
    """One training example for the observation model from an episode's frames start … start+T−1.

    The state is S(start) (`episode_state`), rendered along the clip's cameras; the target is the
    recorded video. Returns `target`, `scene`, `skeleton` uint8 `[T, H, W, 3]` and `mask` bool
    `[T, H, W]` (True = not covered by the state).
    """
    if start < 0 or start + frames > len(episode):
        raise ValueError(f"clip of {frames} frames from {start}; the episode has {len(episode)} frames")
    sl = slice(start, start + frames)
    state = episode_state(episode, start, config)
    H, W = episode.rgb.shape[1:3]
    poses = episode.cam_to_world[sl]
    rendering = render_state(state, episode.K, poses, H, W, method=render_method)
    return {
        "target": episode.rgb[sl],
        "scene": rendering.video,
        "mask": rendering.mask,
        "skeleton": action_video(episode.action(sl), episode.K, poses, H, W),
    }


# --------------------------------------------------------------------------- the simulator


@dataclass
class StepRecord:
    """Everything one `step` produced."""

    video: np.ndarray  # [T, H, W, 3] uint8, generated
    rendering: Rendering  # the state along the camera path (before the update)
    skeleton: np.ndarray  # [T, H, W, 3] uint8
    frames: np.ndarray  # [T] global frame indices
    report: UpdateReport | None


class EgoSim:
    """A closed-loop egocentric simulator with a persistent 3D state (gym-like `reset` / `step`).

    Args:
        state: S_0.
        model: an `ObservationModel`; clips have `model.config.num_frames` frames at its size.
        K: `[3, 3]` intrinsics at the model's frame size.
        backend: reconstruction for the state update (default `StateRenderBackend`).
        render_method: "raycast" or "splat" (Π); default the renderer the model was trained with
            (`model.config.training`), else "raycast".
        trunc_voxel_multiplier: truncation (voxels) of the update's static fusion; default the one
            the model's training states were fused with (else the state's), and at least
            `ESTIMATED_DEPTH_TRUNC_MULTIPLIER` for estimated depth.
        num_inference_steps: sampling steps (default: the model's, 50 as the paper).
        seed: sampling seed of the first clip (clip k uses seed + k).
        update_kwargs: extra arguments of `update_state` (they win over the above).

    ``self.settings`` (`egoworld.sim.run_settings.RunSettings`) holds what is used and a note for each
    departure from the model's training (a different renderer, voxel size or truncation).
    """

    def __init__(
        self,
        state: SceneState,
        model,
        K: np.ndarray,
        *,
        backend: ReconstructionBackend | None = None,
        render_method: str | None = None,
        trunc_voxel_multiplier: float | None = None,
        num_inference_steps: int | None = None,
        seed: int = 0,
        update_kwargs: dict | None = None,
    ):
        from egoworld.sim.run_settings import run_settings

        self.model = model
        self.K = validate_intrinsics(K)
        self.backend = backend or StateRenderBackend()
        if not isinstance(state, SceneState):
            raise ValueError(f"state is a {type(state).__name__}; expected a SceneState")
        self.settings = run_settings(
            getattr(model.config, "training", None),
            state.config,
            render=render_method,
            trunc_voxel_multiplier=trunc_voxel_multiplier,
        )
        for note in self.settings.notes:
            logger.info("%s", note)
        self.render_method = self.settings.render
        self.num_inference_steps = num_inference_steps
        self.seed = int(seed)
        self.update_kwargs = dict(update_kwargs or {})
        self.reset(state)

    @property
    def clip_frames(self) -> int:
        return int(self.model.config.num_frames)

    def reset(self, state: SceneState, observation: np.ndarray | None = None) -> SceneState:
        """Start over from `state` (kept as given; the loop works on copies). `observation`
        `[H, W, 3]` uint8, if given, is the current view: the first frame of the next clip."""
        if not isinstance(state, SceneState):
            raise ValueError(f"state is a {type(state).__name__}; expected a SceneState")
        c = self.model.config
        if observation is not None and np.shape(observation) != (c.height, c.width, 3):
            raise ValueError(
                f"observation has shape {list(np.shape(observation))}; expected [{c.height}, {c.width}, 3]"
            )
        if observation is not None and np.asarray(observation).dtype != np.uint8:
            raise ValueError(
                f"observation has dtype {np.asarray(observation).dtype}; expected uint8 RGB (a float or NaN "
                "frame is not cast silently)"
            )
        self.state = state
        self.initial_state = state
        self.last_frame = None if observation is None else np.asarray(observation, dtype=np.uint8)
        self.frame = 0
        self.clip = 0
        self.history: list[StepRecord] = []
        return state

    def _generate(self, rendering: Rendering, skeleton: np.ndarray) -> np.ndarray:
        import torch

        from egoworld.sim.observe import to_model_video, to_uint8_video

        first = None
        if self.last_frame is not None:
            first = to_model_video(self.last_frame[None])[:, 0]
        out = self.model.generate(
            to_model_video(rendering.video),
            torch.from_numpy(rendering.mask)[None, :, None].float(),
            to_model_video(skeleton),
            first_frame=first,
            num_inference_steps=self.num_inference_steps,
            seed=self.seed + self.clip,
        )
        return to_uint8_video(out)

    def step(self, camera_poses: np.ndarray, action: np.ndarray | GripperAction) -> np.ndarray:
        """Generate one clip along `camera_poses` `[T, 4, 4]` under `action`; update the state.

        Returns the generated observation video `[T, H, W, 3]` uint8 (details in `self.history`).
        """
        T, c = self.clip_frames, self.model.config
        poses = validate_poses(camera_poses)
        if poses.shape != (T, 4, 4):
            raise ValueError(f"camera poses have shape {list(poses.shape)}; expected [{T}, 4, 4] (one clip)")
        action = check_action(action, T)
        rendering = render_state(self.state, self.K, poses, c.height, c.width, method=self.render_method)
        skeleton = action_video(action, self.K, poses, c.height, c.width)
        video = self._generate(rendering, skeleton)
        frames = np.arange(self.frame, self.frame + T)
        keypoints = _keypoints_world(action)
        request = ClipRequest(
            frames, video, poses, self.K, rendering, skeleton, keypoints, self.state, self.render_method
        )
        rec = self.backend(request)
        trunc = self.settings.truncation(rec.estimated_depth)
        kwargs = {"trunc_voxel_multiplier": trunc, **self.update_kwargs}
        self.state, report = update_from_reconstruction(self.state, request, rec, **kwargs)
        self.history.append(StepRecord(video, rendering, skeleton, frames, report))
        self.last_frame = video[-1]
        self.frame += T - 1
        self.clip += 1
        return video

    def run(self, camera_poses: np.ndarray, actions: np.ndarray | GripperAction, clips: int) -> np.ndarray:
        """Run `clips` clips along `camera_poses` `[N, 4, 4]` with per-frame `actions` (N ≥ clips·(T−1)+1).

        Returns the continuous video `[clips·(T−1)+1, H, W, 3]` uint8 (shared boundary frames once).
        """
        clips = check_clip_count(clips)
        T = self.clip_frames
        need = clips * (T - 1) + 1
        poses = validate_poses(camera_poses)
        if poses.ndim != 3 or len(poses) < need:
            raise ValueError(
                f"{len(poses) if poses.ndim == 3 else 1} camera poses for {clips} clips of {T} frames; "
                f"expected at least {need}"
            )
        check_action(actions[:need], need)
        videos = []
        for k in range(clips):
            sl = slice(k * (T - 1), k * (T - 1) + T)
            video = self.step(poses[sl], actions[sl])
            videos.append(video if k == 0 else video[1:])
        return np.concatenate(videos)


def check_clip_count(clips: Any) -> int:
    """A clip count >= 1, or ValueError."""
    try:
        n = int(clips)
    except (TypeError, ValueError) as err:
        raise ValueError(f"clips={clips!r}; expected an integer >= 1") from err
    if n < 1 or n != clips:
        raise ValueError(f"clips={clips!r}; expected an integer >= 1")
    return n


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: corrupt or unreadable PNG; expected an RGB frame ({err})") from err


def _load_npy(path: Path) -> np.ndarray:
    """An array file of an episode; never a pickle, one line naming the file when it is damaged."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npy array ({err})") from err


def _json_keys(path: Path, keys: tuple[str, ...]) -> dict:
    from egoworld.data.untrusted import read_json_object

    data = read_json_object(path)
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{path} lacks {missing}; expected the keys {list(keys)}")
    return data
