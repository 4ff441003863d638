"""Reconstruction backends of the closed loop: per-frame depth, poses and masks of a generated clip.

`egoworld.sim.loop.EgoSim` hands each generated clip to a backend (a `ClipRequest`) and folds the
`Reconstruction` it returns into the state with `update_state` (`update_from_reconstruction`).
Every backend keeps object surfaces out of the static TSDF (no "ghosts" once an object moves):

- `GroundTruthBackend` (synthetic worlds): the generating episode's depth, poses and instance masks
  (the dataset's hand and object masks).
- `StateRenderBackend` (always available): the static TSDF's own depth along the commanded poses
  (the state's objects left out), the objects' rendered silhouettes and the hands (from their 3-D
  keypoints, `egoworld.sim.hand_mask`) masked; no object moves (a colour-only update).
- `EstimatedBackend`: Depth Anything (transformers, a local folder) made metric frame by frame
  against the state's rendered depth and the hand keypoints (`egoworld.sim.depth_align`), Open3D
  RGB-D odometry on that metric depth, hands masked from their keypoints (joined with SAM 2 prompted
  at them when a checkpoint is given), the state's objects masked where it has them, pixels in front
  of the state that no mask explains left out, and, with a SAM 2 checkpoint, the object at the hand
  contact tracked and moved. Fused at the wider truncation for estimated depth.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from egoworld.sim.camera import project, world_to_camera
from egoworld.sim.hand_mask import Sam2HandSegmenter, hand_masks
from egoworld.sim.hands import project_keypoints
from egoworld.sim.render import DEFAULT_METHOD, Rendering, render_state
from egoworld.sim.state import SceneState
from egoworld.sim.update import update_state

logger = logging.getLogger(__name__)


@dataclass
class ClipRequest:
    """What a backend gets to reconstruct one generated clip (T frames)."""

    frames: np.ndarray  # [T] global frame indices
    video: np.ndarray  # [T, H, W, 3] uint8, generated
    poses: np.ndarray  # [T, 4, 4] commanded camera-to-world
    K: np.ndarray  # [3, 3]
    rendering: Rendering  # the state along `poses`
    skeleton: np.ndarray  # [T, H, W, 3] uint8
    keypoints: np.ndarray  # [T, A, 21, 3] world
    state: SceneState
    render_method: str = DEFAULT_METHOD  # the renderer Π the loop uses


@dataclass
class Reconstruction:
    """Per-frame geometry of a generated clip for `update_state`."""

    depth: np.ndarray  # [T, H, W] float32 metres (0 = unknown)
    poses: np.ndarray  # [T, 4, 4]
    object_masks: dict[Any, np.ndarray] = field(default_factory=dict)  # id → [T, H, W] bool
    hand_masks: np.ndarray | None = None  # [T, H, W] bool
    object_ids: list = field(default_factory=list)  # the interacted objects to move
    in_state_frame: bool = False  # depth and poses already metric in the state's frame: no Sim(3) fit
    ignore_masks: np.ndarray | None = None  # [T, H, W] bool: neither static nor an object; not fused
    estimated_depth: bool = False  # fuse with the wider truncation (ESTIMATED_DEPTH_TRUNC_MULTIPLIER)
    depth_fits: list = field(default_factory=list)  # per-frame DepthFit of estimated depth


class ReconstructionBackend(Protocol):
    def __call__(self, request: ClipRequest) -> Reconstruction: ...


def update_from_reconstruction(state: SceneState, request: ClipRequest, rec: Reconstruction, **update_kwargs):
    """`update_state` of `state` with a backend's reconstruction of `request`'s clip → (state, report).

    The clip is aligned (Sim(3)) unless the reconstruction is already in the state's frame, and fused
    at the wider truncation when its depth is estimated; `update_kwargs` override both.
    """
    clip = {
        "rgb": request.video,
        "depth": rec.depth,
        "K": request.K,
        "poses": rec.poses,
        "state_poses": request.poses,
        "object_masks": rec.object_masks,
        "hand_masks": rec.hand_masks,
        "ignore_masks": rec.ignore_masks,
        "hand_keypoints": request.keypoints,
    }
    kwargs = {"align": not rec.in_state_frame, "estimated_depth": rec.estimated_depth, **update_kwargs}
    return update_state(state, clip, rec.object_ids, return_report=True, **kwargs)


# --------------------------------------------------------------------------- shared pieces


def state_object_masks(
    state: SceneState,
    K: np.ndarray,  # [3, 3]
    poses: np.ndarray,  # [T, 4, 4]
    static_depth: np.ndarray,  # [T, H, W] metres of the static TSDF alone (0 = uncovered)
    *,
    dilate_px: int = 1,
) -> dict[Any, np.ndarray]:
    """Where each of the state's objects shows at its current pose: id → ``[T, H, W]`` bool.

    An object's points are splatted as the renderer does; a pixel is the object's when its point is
    no more than 2 voxels behind the static surface there (or nothing static is there), dilated by
    `dilate_px` so the silhouette's edge is not fused as static.
    """
    import cv2
    import torch

    from egoworld.sim.render import splat_points

    T, H, W = static_depth.shape
    voxel = state.config.voxel_size
    kernel = np.ones((2 * dilate_px + 1,) * 2, np.uint8) if dilate_px > 0 else None
    out = {}
    for oid, obj in state.objects.items():
        pts = torch.from_numpy(np.ascontiguousarray(obj.world_points(), dtype=np.float32))
        cols = torch.zeros_like(pts)
        masks = np.zeros((T, H, W), bool)
        for t in range(T):
            _, d = splat_points(pts, cols, K, poses[t], H, W, point_spacing=voxel)
            d = d.numpy()
            static = static_depth[t]
            m = np.isfinite(d) & ((static <= 0) | (d <= static + 2 * voxel))
            if kernel is not None:
                m = cv2.dilate(m.astype(np.uint8), kernel) > 0
            masks[t] = m
        out[oid] = masks
    return out


def keypoint_anchors(
    keypoints: np.ndarray, poses: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hand keypoints ``[T, A, 21, 3]`` (world) as depth anchors: pixels ``[T, A·21, 2]`` and
    camera z ``[T, A·21]`` (NaN where a keypoint does not project)."""
    T = len(keypoints)
    kp = np.asarray(keypoints, dtype=np.float64).reshape(T, -1, 3)
    cam = world_to_camera(kp, poses)  # [T, A·21, 3]
    uv, z = project(cam, K)
    return uv, np.where(np.isfinite(uv).all(-1), z, np.nan)


# --------------------------------------------------------------------------- backends


class GroundTruthBackend:
    """Ground truth of the synthetic episode the actions came from: depth, poses, instance masks.

    Object masks are given for every movable object (so none is fused into the static scene); the
    interacted objects are the ones whose ground-truth pose changes during the clip. The hand mask is
    the episode's instance mask of the effector.
    """

    def __init__(self, episode):
        self.episode = episode  # an egoworld.sim.loop.TabletopEpisode

    def __call__(self, request: ClipRequest) -> Reconstruction:
        ep, fr = self.episode, np.asarray(request.frames)
        if fr.max() >= len(ep):
            raise ValueError(f"the clip reaches frame {fr.max()}; the episode has {len(ep)} frames")
        inst = ep.instances[fr]
        if inst.shape[1:] != request.video.shape[1:3]:
            raise ValueError(
                f"episode frames are {inst.shape[1:]}; the generated clip is {request.video.shape[1:3]}"
            )
        masks = {oid: inst == oid for oid in ep.movable_ids}
        return Reconstruction(
            depth=ep.depth[fr].astype(np.float32),
            poses=ep.cam_to_world[fr],
            object_masks=masks,
            hand_masks=inst == ep.effector_id,
            object_ids=[o for o in ep.moved_objects(fr) if masks[o].any()],
            in_state_frame=True,
        )


class StateRenderBackend:
    """Geometry the simulator already believes: the static TSDF's depth along the commanded poses.

    Colours of the generated clip are fused onto the static surface where it covers the pixel. The
    state's objects are left out twice over: their depth is not used (the static TSDF is rendered
    without them) and their silhouettes are masked (their colours would otherwise paint the surface
    behind them). Hands are masked from their 3-D keypoints (`egoworld.sim.hand_mask`, the forearm
    estimated), joined with `hand_segmenter`'s masks when one is given. No object is moved.
    """

    def __init__(self, *, hand_segmenter: Sam2HandSegmenter | None = None):
        self.hand_segmenter = hand_segmenter

    def __call__(self, request: ClipRequest) -> Reconstruction:
        T, H, W = request.video.shape[:3]
        static = render_state(
            request.state, request.K, request.poses, H, W, method=request.render_method, include_objects=False
        )
        objects = state_object_masks(request.state, request.K, request.poses, static.depth)
        hands = hand_masks(
            request.keypoints,
            request.K,
            request.poses,
            H,
            W,
            frames=request.video,
            segmenter=self.hand_segmenter,
        )
        return Reconstruction(
            depth=static.depth.astype(np.float32),
            poses=request.poses,
            object_masks=objects,
            hand_masks=hands,
            in_state_frame=True,
        )


class EstimatedBackend:
    """Monocular depth made metric per frame + Open3D RGB-D odometry + hand/object masks.

    Args:
        depth_model: a local Depth Anything folder (transformers; raises FileNotFoundError without it).
        depth_estimator: instead of `depth_model`, any callable frames ``[T, H, W, 3]`` uint8 →
            raw prediction ``[T, H, W]``, with `depth_kind` saying what it predicts.
        depth_kind: "disparity" (relative models), "depth" (affine-invariant depth) or "metric";
            default from the Depth Anything config (``depth_estimation_type``: metric → "metric",
            else "disparity").
        sam2_checkpoint, sam2_config: a local SAM 2 checkpoint: the object at the hand contact is
            tracked (the video predictor, prompted at the midpoint of the thumb and index tips
            where they are closest) and moved, and the hands are segmented (the image predictor
            prompted at the projected keypoints) unless `hand_segmenter` is given.
        hand_segmenter: a `Sam2HandSegmenter` to join with the keypoint hand masks.
        change_tolerance: metres a pixel may lie in front of the static state before it counts as
            unexplained change (not fused); default ``max(2 voxels, 2 cm) + 3 %`` of the state's depth.
        device: torch device.

    Per frame: the prediction is aligned (`egoworld.sim.depth_align`) to the static TSDF rendered
    along the commanded poses (covered pixels away from the hands and the state's objects) and to
    the hand keypoints' depths; odometry runs on that metric depth with the hands and changed pixels
    left out and starts at the commanded first pose, so `update_state` still fits a Sim(3) for the
    drift. Objects the state has are masked where they were; anything else in front of the state
    (an object moved there, a hand the masks missed) is left out of the static fusion.
    """

    def __init__(
        self,
        depth_model: str | Path | None = None,
        *,
        depth_estimator=None,
        depth_kind: str | None = None,
        sam2_checkpoint: str | Path | None = None,
        sam2_config: str | None = None,
        hand_segmenter: Sam2HandSegmenter | None = None,
        change_tolerance: float | None = None,
        device: str = "cpu",
    ):
        from egoworld.sim.depth_align import DEPTH_KINDS

        if (depth_model is None) == (depth_estimator is None):
            raise ValueError("give exactly one of depth_model (a Depth Anything folder) and depth_estimator")
        if depth_estimator is None:
            from egoworld.metrics.geometry import DepthAnythingEstimator

            # the raw output: disparity up to scale and shift for relative models (never inverted here)
            depth_estimator = DepthAnythingEstimator(depth_model, output="depth", device=device)
            if depth_kind is None:
                kind = getattr(depth_estimator.model.config, "depth_estimation_type", "relative")
                depth_kind = "metric" if kind == "metric" else "disparity"
        if depth_kind not in DEPTH_KINDS:
            raise ValueError(f"depth_kind={depth_kind!r}; expected one of {list(DEPTH_KINDS)}")
        self.depth, self.depth_kind = depth_estimator, depth_kind
        self.change_tolerance = change_tolerance
        self.tracker = None
        self.hand_segmenter = hand_segmenter
        if sam2_checkpoint is not None:
            from egoworld.metrics.tracking import DEFAULT_SAM2_CONFIG, Sam2Tracker

            self.tracker = Sam2Tracker(sam2_config or DEFAULT_SAM2_CONFIG, sam2_checkpoint, device)
            if hand_segmenter is None:
                self.hand_segmenter = Sam2HandSegmenter(sam2_config, sam2_checkpoint, device)

    def metric_depth(self, request: ClipRequest, static: Rendering, exclude: np.ndarray):
        """The prediction aligned per frame → metric depth ``[T, H, W]`` and the fits."""
        from egoworld.sim.depth_align import align_depth

        raw = np.asarray(self.depth(request.video), dtype=np.float64)
        if raw.shape != request.video.shape[:3]:
            raise ValueError(
                f"depth estimator returned {list(raw.shape)}; expected {list(request.video.shape[:3])}"
            )
        anchors = np.where(~static.mask & ~exclude, static.depth, 0.0)
        uv, z = keypoint_anchors(request.keypoints, request.poses, request.K)
        return align_depth(raw, self.depth_kind, anchors, uv, z)

    def __call__(self, request: ClipRequest) -> Reconstruction:
        from egoworld.metrics.geometry import Open3DOdometry

        T, H, W = request.video.shape[:3]
        state = request.state
        static = render_state(
            state, request.K, request.poses, H, W, method=request.render_method, include_objects=False
        )
        objects = state_object_masks(state, request.K, request.poses, static.depth)
        hands = hand_masks(
            request.keypoints,
            request.K,
            request.poses,
            H,
            W,
            frames=request.video,
            segmenter=self.hand_segmenter,
        )
        known = hands.copy()
        for m in objects.values():
            known |= m
        depth, fits = self.metric_depth(request, static, known)
        tol = self.change_tolerance
        if tol is None:
            tol = max(2 * state.config.voxel_size, 0.02) + 0.03 * static.depth
        changed = (depth > 0) & ~static.mask & (depth < static.depth - tol) & ~known
        odometry = Open3DOdometry(depth_max=state.config.depth_max)  # metres, as Open3D expects
        rel = odometry(request.video, np.where(known | changed, 0.0, depth).astype(np.float32), request.K)
        rec = Reconstruction(
            depth=depth,
            poses=request.poses[0] @ rel,
            object_masks=objects,
            hand_masks=hands,
            ignore_masks=changed,
            estimated_depth=True,
            depth_fits=fits,
        )
        logger.info(
            "estimated depth: %d/%d frames aligned, %.1f %% of pixels in front of the state left out",
            sum(f.ok for f in fits),
            T,
            100.0 * changed.mean(),
        )
        if self.tracker is not None and state.objects:
            self._track_contact(request, rec)
        return rec

    def _track_contact(self, request: ClipRequest, rec: Reconstruction) -> None:
        """SAM 2 prompted at the hand contact; the mask goes to the nearest state object, which moves."""
        from egoworld.metrics.tracking import ObjectPrompt

        kp = request.keypoints[:, 0]  # first hand [T, 21, 3]
        gap = np.linalg.norm(kp[:, 4] - kp[:, 8], axis=-1)
        if not np.isfinite(gap).any():
            return
        t = int(np.nanargmin(gap))
        uv, _ = project_keypoints(kp[t, [4, 8]], request.K, request.poses[t])
        if not np.all(np.isfinite(uv)):
            return
        point = uv.mean(0)
        H, W = request.video.shape[1:3]
        if not (0 <= point[0] <= W - 1 and 0 <= point[1] <= H - 1):
            return
        oid = _nearest_object(request.state, point, request.K, request.poses[t])
        masks = self.tracker.track(
            request.video, [ObjectPrompt(str(oid), t, point[None], np.ones(1, np.int32))]
        )
        if oid in rec.object_masks:  # where the state had it stays out of the static fusion too
            rec.ignore_masks = rec.object_masks[oid] | (
                False if rec.ignore_masks is None else rec.ignore_masks
            )
        rec.object_masks[oid] = masks[:, 0]
        rec.object_ids = [oid]


def _nearest_object(state: SceneState, point: np.ndarray, K: np.ndarray, pose: np.ndarray):
    best, best_d = None, np.inf
    for oid, obj in state.objects.items():
        uv, _ = project_keypoints(obj.world_points().mean(0), K, pose)
        d = float(np.linalg.norm(uv - point))
        if d < best_d:
            best, best_d = oid, d
    return best
