"""Training-free state update U (EgoSim §3.3): reconstruct a generated clip and fold it into the state.

Steps, in order:

The clip's depth must be metric, or share one unknown scale with its poses (one similarity for the
whole clip). Relative monocular depth (Depth Anything's disparity: an unknown scale *and shift*
per frame) is not: put it on a metric scale frame by frame first (`egoworld.sim.depth_align`,
which `egoworld.sim.loop.EstimatedBackend` runs before its odometry), then call this.

1. **Sim(3) alignment** of the clip's reconstruction (its depths and camera poses, e.g. from
   odometry, known only up to a similarity) to the state: the state is rendered at the
   trajectory it was rendered along for generation (``clip["state_poses"]``, default the clip's
   poses), static pixels covered by both give 3D correspondences (at most ``max_correspondences``,
   an even subsample), and a robust Umeyama fit gives ``s, R, t``; depths are scaled by ``s`` and
   poses mapped into the state's frame.
2. **Object filtering**, per interacted object id: *spatial proximity* — with ``hand_masks`` (the
   paper's rule) an object is updated only if the IoU of the hand's and the object's masks
   exceeds ``min_hand_iou`` (0.15) in some frame, the IoU taken over the masks' bounding boxes by
   default (a hand and the object it holds are disjoint pixel sets, so their pixel IoU is 0 exactly
   when they touch; ``hand_iou="mask"`` uses the pixel IoU); without hand masks but with hand
   keypoints, its points must come within ``max_hand_distance`` of a keypoint in some frame;
   *depth consistency* — mask pixels whose depth is more than ``depth_tolerance`` from the mask's
   median depth in that frame are dropped; *temporal completeness* — of the points seen in the
   final ``final_window`` frames (the object at rest), only voxels seen in at least ``min_views``
   of those frames are kept.
3. **Moving the object**: its new pose is the old one composed with the rigid transform that takes
   its old points to the new observation (centroid shift refined by ICP); an object seen for the
   first time becomes a new point set. In both cases its old place is carved from the static TSDF
   (when ``carve_static``): the static state is ray cast at the alignment frames, and the state
   surface under the object's mask that agrees with the clip's observation of the object (within
   ``carve_tolerance``; for a known object also that close to its old points) is the object as
   the state had fused it; voxels within the truncation band of those points (``carve_radius``)
   are forgotten, and so are voxels within 1.5 voxels of a known object's old points. The new
   points are merged into the object's point set (voxel-downsampled, statistical outlier removal).
4. **Static fusion**: every frame is TSDF-fused with object, hand and ``ignore_masks`` pixels
   ignored, after per-frame statistical outlier removal of its back-projected points; the outlier
   test runs on the points averaged per ``sor_voxel`` cell (default 2 voxels) and each pixel takes
   its cell's verdict. ``trunc_voxel_multiplier`` sets the truncation of this fusion; by default
   it is the state's own (4 voxels) for ground-truth / sensor depth and
   ``ESTIMATED_DEPTH_TRUNC_MULTIPLIER`` (8) with ``estimated_depth=True``.

``update_state`` works on a copy and returns it unless ``in_place=True``; it never writes files,
so a state saved on disk is untouched whatever happens (save the result yourself, atomically).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from egoworld.sim.align import robust_umeyama
from egoworld.sim.camera import validate_intrinsics, validate_poses
from egoworld.sim.hands import _as_hands
from egoworld.sim.render import Rendering, render_state
from egoworld.sim.state import ESTIMATED_DEPTH_TRUNC_MULTIPLIER, SceneState

HAND_IOU_MODES = ("box", "mask")

logger = logging.getLogger(__name__)


@dataclass
class UpdateReport:
    """What :func:`update_state` did: the similarity applied to the clip and per-object outcomes."""

    scale: float
    rotation: np.ndarray  # [3, 3]
    translation: np.ndarray  # [3]
    moved: dict[Any, np.ndarray]  # object id → rigid delta [4, 4] applied to its old pose (identity if new)
    skipped: dict[Any, str]  # object id → reason
    carved: dict[Any, int] = field(default_factory=dict)  # object id → static voxels cleared
    truncation_voxels: float | None = None  # truncation of the static fusion, in voxels


def _check_clip(clip: dict) -> dict:
    for key in ("rgb", "depth", "K", "poses"):
        if key not in clip:
            raise ValueError(f"clip has no {key!r}; expected keys rgb, depth, K, poses[, object_masks, ...]")
    rgb = np.asarray(clip["rgb"])
    depth = np.asarray(clip["depth"], dtype=np.float32)
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"clip rgb has shape {list(rgb.shape)}; expected [T, H, W, 3]")
    T, H, W = rgb.shape[:3]
    if depth.shape != (T, H, W):
        raise ValueError(f"clip depth has shape {list(depth.shape)}; expected [{T}, {H}, {W}]")
    poses = validate_poses(clip["poses"])
    if poses.shape != (T, 4, 4):
        raise ValueError(f"clip poses have shape {list(poses.shape)}; expected [{T}, 4, 4]")
    state_poses = validate_poses(clip.get("state_poses", poses))
    if state_poses.shape != (T, 4, 4):
        raise ValueError(f"clip state_poses have shape {list(state_poses.shape)}; expected [{T}, 4, 4]")
    masks = {}
    for oid, m in (clip.get("object_masks") or {}).items():
        m = np.asarray(m, dtype=bool)
        if m.shape != (T, H, W):
            raise ValueError(f"object mask {oid!r} has shape {list(m.shape)}; expected [{T}, {H}, {W}]")
        masks[oid] = m
    hand_masks = clip.get("hand_masks")
    if hand_masks is not None:
        hand_masks = np.asarray(hand_masks, dtype=bool)
        if hand_masks.shape != (T, H, W):
            raise ValueError(f"hand_masks have shape {list(hand_masks.shape)}; expected [{T}, {H}, {W}]")
    ignore = clip.get("ignore_masks")
    if ignore is not None:
        ignore = np.asarray(ignore, dtype=bool)
        if ignore.shape != (T, H, W):
            raise ValueError(f"ignore_masks have shape {list(ignore.shape)}; expected [{T}, {H}, {W}]")
    hands = clip.get("hand_keypoints")
    if hands is not None:
        hands = _as_hands(hands)
        if len(hands) != T:
            raise ValueError(f"hand_keypoints have {len(hands)} frames; expected {T}")
    return {
        "rgb": rgb,
        "depth": np.where(np.isfinite(depth), depth, 0.0).astype(np.float32),
        "K": validate_intrinsics(clip["K"]),
        "poses": poses,
        "state_poses": state_poses,
        "object_masks": masks,
        "hand_masks": hand_masks,
        "ignore_masks": ignore,
        "hand_keypoints": hands,
    }


def _to_world(depth: np.ndarray, K: np.ndarray, pose: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """World points ``[N, 3]`` of the pixels in `sel` ``[H, W]`` (row-major order)."""
    v, u = np.nonzero(sel)
    z = depth[v, u].astype(np.float64)
    pc = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=-1)
    return pc @ pose[:3, :3].T + pose[:3, 3]


def _state_views(state: SceneState, c: dict, max_frames: int, *, include_objects: bool = True):
    """Frames ``[F]`` (evenly spread, the first included) and the state rendered there along state_poses."""
    T, H, W = c["depth"].shape
    frames = np.unique(np.linspace(0, T - 1, min(max_frames, T)).round().astype(int))
    rend = render_state(state, c["K"], c["state_poses"][frames], H, W, include_objects=include_objects)
    return frames, rend


def align_clip_to_state(
    state: SceneState,
    c: dict,
    static: np.ndarray,
    *,
    max_frames: int = 4,
    min_points: int = 50,
    max_correspondences: int = 20_000,
    views: tuple[np.ndarray, Rendering] | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Sim(3) taking the clip's reconstruction into the state's frame (identity if the state is empty).

    `views` is ``(frames, rendering)`` of the state along ``c["state_poses"][frames]`` when already
    rendered. At most `max_correspondences` static correspondences (an even subsample) enter the fit.
    """
    if state.num_blocks == 0:
        return 1.0, np.eye(3), np.zeros(3)
    frames, rend = views if views is not None else _state_views(state, c, max_frames)
    src, dst = [], []
    for k, t in enumerate(frames):
        sel = static[t] & (c["depth"][t] > 0) & ~rend.mask[k]
        src.append(_to_world(c["depth"][t], c["K"], c["poses"][t], sel))
        dst.append(_to_world(rend.depth[k], c["K"], c["state_poses"][t], sel))
    src, dst = np.concatenate(src), np.concatenate(dst)
    if len(src) < min_points:
        logger.warning("only %d static correspondences with the state; not aligning the clip", len(src))
        return 1.0, np.eye(3), np.zeros(3)
    if len(src) > max_correspondences:
        pick = np.linspace(0, len(src) - 1, max_correspondences).round().astype(np.int64)
        src, dst = src[pick], dst[pick]
    return robust_umeyama(src, dst)


def _apply_sim3_to_clip(c: dict, s: float, R: np.ndarray, t: np.ndarray) -> None:
    c["depth"] = (c["depth"] * s).astype(np.float32)
    poses = c["poses"].copy()
    poses[:, :3, :3] = R @ poses[:, :3, :3]
    poses[:, :3, 3] = s * poses[:, :3, 3] @ R.T + t
    c["poses"] = poses
    if c["hand_keypoints"] is not None:
        c["hand_keypoints"] = s * c["hand_keypoints"] @ R.T + t


def _voxel_cells(points: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell index ``[N]`` of each point on a `voxel` grid and the cells' mean points ``[M, 3]``."""
    vox = np.floor(points / voxel).astype(np.int64)
    vox -= vox.min(0)
    span = vox.max(0) + 1
    key = (vox[:, 0] * span[1] + vox[:, 1]) * span[2] + vox[:, 2]  # one int64 per cell: a 1-D unique
    _, inv = np.unique(key, return_inverse=True)
    inv = inv.reshape(-1)
    n = int(inv.max()) + 1
    cnt = np.bincount(inv, minlength=n)[:, None]
    means = np.stack([np.bincount(inv, points[:, k], n) for k in range(3)], 1) / cnt
    return inv, means


def _statistical_inliers(
    points: np.ndarray, nb_neighbors: int, std_ratio: float, voxel: float | None = None
) -> np.ndarray:
    """Boolean [N] of points kept by Open3D's statistical outlier removal.

    With `voxel`, the test runs on the per-cell mean points of a `voxel` grid and every point takes
    its cell's verdict (a full-resolution frame has ~10⁵ points; the test is O(N k log N)).
    """
    import open3d as o3d

    points = np.asarray(points, dtype=np.float64)
    if len(points) <= nb_neighbors:
        return np.ones(len(points), bool)
    inv = None
    if voxel is not None and voxel > 0:
        inv, points = _voxel_cells(points, voxel)
        if len(points) <= nb_neighbors:
            return np.ones(len(inv), bool)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    _, keep = pc.remove_statistical_outlier(nb_neighbors=nb_neighbors, std_ratio=std_ratio)
    out = np.zeros(len(points), bool)
    out[np.asarray(keep, dtype=np.int64)] = True
    return out if inv is None else out[inv]


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the bounding boxes of two ``[H, W]`` masks (0 when either is empty)."""
    boxes = []
    for m in (a, b):
        rows, cols = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
        if len(rows) == 0:
            return 0.0
        boxes.append((rows[0], cols[0], rows[-1] + 1, cols[-1] + 1))  # half-open pixel boxes
    (r0, c0, r1, c1), (s0, d0, s1, d1) = boxes
    inter = max(0, min(r1, s1) - max(r0, s0)) * max(0, min(c1, d1) - max(c0, d0))
    union = (r1 - r0) * (c1 - c0) + (s1 - s0) * (d1 - d0) - inter
    return inter / union


def hand_object_iou(hand_masks: np.ndarray, object_masks: np.ndarray, mode: str = "box") -> np.ndarray:
    """Per-frame IoU ``[T]`` of hand and object masks ``[T, H, W]``: of their bounding boxes or pixels."""
    if mode not in HAND_IOU_MODES:
        raise ValueError(f"hand IoU mode {mode!r}; expected one of {list(HAND_IOU_MODES)}")
    hand, obj = np.asarray(hand_masks, bool), np.asarray(object_masks, bool)
    if mode == "box":
        return np.array([_box_iou(h, o) for h, o in zip(hand, obj)])
    inter = (hand & obj).sum((1, 2))
    union = (hand | obj).sum((1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def _hand_distance(c: dict, per_frame: list[np.ndarray]) -> float:
    """Smallest distance (metres) between the object's per-frame points and the hand keypoints."""
    from scipy.spatial import cKDTree

    near = np.inf
    for tt, pts in enumerate(per_frame):
        kp = c["hand_keypoints"][tt].reshape(-1, 3)
        kp = kp[np.all(np.isfinite(kp), axis=1)]
        if len(pts) and len(kp):
            near = min(near, float(cKDTree(kp).query(pts, k=1)[0].min()))
    return near


def _old_place(
    c: dict, mask: np.ndarray, views: tuple[np.ndarray, Rendering], tolerance: float
) -> np.ndarray:
    """State surface points ``[N, 3]`` where the clip sees the object and the static state agrees.

    `views` renders the static state (no object point sets) along state_poses; a pixel of the
    object's mask whose clip point and state point are within `tolerance` shows the object where
    the state had fused it (typically the clip's first frames, before the hand moves it).
    """
    frames, rend = views
    out = []
    for k, t in enumerate(frames):
        sel = mask[t] & (c["depth"][t] > 0) & ~rend.mask[k]
        if not sel.any():
            continue
        seen = _to_world(c["depth"][t], c["K"], c["poses"][t], sel)
        state_pts = _to_world(rend.depth[k], c["K"], c["state_poses"][t], sel)
        out.append(state_pts[np.linalg.norm(seen - state_pts, axis=1) <= tolerance])
    return np.concatenate(out) if out else np.zeros((0, 3))


def _object_observation(
    c: dict, mask: np.ndarray, *, depth_tolerance: float, final_window: int, min_views: int, voxel: float
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Filtered points + colours of one object at rest at the clip's end, and per-frame world points."""
    T = len(mask)
    per_frame = []
    for t in range(T):
        sel = mask[t] & (c["depth"][t] > 0)
        if sel.any():
            med = np.median(c["depth"][t][sel])
            sel &= np.abs(c["depth"][t] - med) <= depth_tolerance  # depth consistency
        per_frame.append(sel)
    window = range(max(0, T - final_window), T)
    pts, cols, frame_of = [], [], []
    for t in window:
        sel = per_frame[t]
        pts.append(_to_world(c["depth"][t], c["K"], c["poses"][t], sel))
        cols.append(c["rgb"][t][sel])
        frame_of.append(np.full(int(sel.sum()), t))
    pts, cols, frame_of = np.concatenate(pts), np.concatenate(cols), np.concatenate(frame_of)
    if len(pts):  # temporal completeness: voxels seen in >= min_views frames of the window
        vox = np.floor(pts / voxel).astype(np.int64)
        _, inv = np.unique(vox, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        pairs = np.unique(np.stack([inv, frame_of], 1), axis=0)
        views = np.bincount(pairs[:, 0], minlength=inv.max() + 1)
        keep = views[inv] >= min_views
        pts, cols = pts[keep], cols[keep]
    all_world = [_to_world(c["depth"][t], c["K"], c["poses"][t], per_frame[t]) for t in range(T)]
    return pts, cols, all_world


def _estimate_motion(old: np.ndarray, new: np.ndarray, voxel: float) -> np.ndarray:
    """Rigid 4×4 taking `old` world points onto the `new` observation: centroid shift, then ICP."""
    import open3d as o3d

    T0 = np.eye(4)
    T0[:3, 3] = new.mean(0) - old.mean(0)
    src = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(old.astype(np.float64)))
    dst = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(new.astype(np.float64)))
    reg = o3d.pipelines.registration
    best = T0
    for dist in (6 * voxel, 3 * voxel, 1.5 * voxel):
        res = reg.registration_icp(
            src,
            dst,
            dist,
            best,
            reg.TransformationEstimationPointToPoint(),
            reg.ICPConvergenceCriteria(max_iteration=30),
        )
        if res.fitness > 0.3:
            best = np.asarray(res.transformation)
    return best


def _voxel_merge(points: np.ndarray, colors: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    vox = np.floor(points / voxel).astype(np.int64)
    _, first, inv = np.unique(vox, axis=0, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    n = len(first)
    cnt = np.bincount(inv, minlength=n)[:, None]
    p = np.stack([np.bincount(inv, points[:, k], n) for k in range(3)], 1) / cnt
    c = np.stack([np.bincount(inv, colors[:, k].astype(np.float64), n) for k in range(3)], 1) / cnt
    return p.astype(np.float32), np.round(c).astype(np.uint8)


def update_state(
    state: SceneState,
    clip: dict,
    object_ids: list | tuple = (),
    *,
    in_place: bool = False,
    align: bool = True,
    min_hand_iou: float = 0.15,
    hand_iou: str = "box",
    max_hand_distance: float = 0.15,
    depth_tolerance: float = 0.15,
    final_window: int | None = None,
    min_views: int | None = None,
    carve_static: bool = True,
    carve_tolerance: float | None = None,
    carve_radius: float | None = None,
    sor_neighbors: int = 20,
    sor_std_ratio: float = 2.0,
    sor_voxel: float | None = None,
    trunc_voxel_multiplier: float | None = None,
    estimated_depth: bool = False,
    max_frames: int = 4,
    return_report: bool = False,
) -> SceneState | tuple[SceneState, UpdateReport]:
    """Fold a generated clip into the state; returns the updated state (a copy unless `in_place`).

    Args:
        state: the state the clip was generated from.
        clip: ``rgb`` [T, H, W, 3] uint8, ``depth`` [T, H, W] float32 metres (0 = unknown), ``K`` [3, 3],
            ``poses`` [T, 4, 4] camera-to-world of the clip's reconstruction; optional ``state_poses``
            [T, 4, 4] (the trajectory the state was rendered along; default ``poses``),
            ``object_masks`` {id: [T, H, W] bool}, ``hand_masks`` [T, H, W] bool,
            ``ignore_masks`` [T, H, W] bool (pixels that are neither static scene nor an object,
            e.g. where estimated depth shows something in front of the state that no mask explains:
            not fused, not used for the alignment),
            ``hand_keypoints`` [T, 21, 3] / [T, 2, 21, 3] in the clip's world frame.
        object_ids: the interacted objects to move/fuse (each needs a mask in ``object_masks``).
        in_place: update `state` itself instead of a copy.
        align: fit the Sim(3) from the clip's reconstruction to the state first.
        min_hand_iou: with ``hand_masks``, an object whose IoU with the hand mask never exceeds this
            in any frame is not updated (EgoSim's spatial-proximity rule, 0.15).
        hand_iou: ``"box"`` (IoU of the masks' bounding boxes, default) or ``"mask"`` (pixel IoU).
        max_hand_distance: without hand masks but with hand keypoints, an object farther than this
            (metres) from every keypoint in every frame is not updated (the fallback rule).
        depth_tolerance: per-frame depth-consistency bound around the mask's median depth (metres).
        final_window: frames at the clip's end where the object is taken to be at rest (default T // 4, >= 1).
        min_views: frames of that window a voxel must be seen in (default half the window, >= 1).
        carve_static: clear an updated object's old place from the static TSDF.
        carve_tolerance: how close (metres) the clip's view of the object and the static state must be
            for the state's surface there to count as the object (default half the truncation used:
            2 voxels for ground-truth depth, 4 with ``trunc_voxel_multiplier=8``); for an object
            that is already a point set, the surface must also lie this close to its old points.
        carve_radius: voxels within this distance (metres) of those surface points are forgotten
            (default the truncation used, plus one voxel: the whole band around the old surface).
        sor_neighbors, sor_std_ratio: statistical outlier removal settings.
        sor_voxel: cell (metres) of the grid the outlier test runs on (default 2 voxels; 0 = every point).
        trunc_voxel_multiplier: truncation (voxels) of the static fusion; default the state's
            (4, for ground-truth depth), or with `estimated_depth` the larger of that and
            ``ESTIMATED_DEPTH_TRUNC_MULTIPLIER`` (8).
        estimated_depth: the clip's depth is estimated (monocular, aligned): fuse it with the wider
            truncation unless `trunc_voxel_multiplier` says otherwise.
        max_frames: frames at which the state is rendered for the alignment and the carving.
        return_report: also return an :class:`UpdateReport`.
    """
    c = _check_clip(clip)
    missing = [o for o in object_ids if o not in c["object_masks"]]
    if missing:
        raise ValueError(
            f"object ids {missing!r} have no mask in clip['object_masks'] (has {list(c['object_masks'])})"
        )
    if hand_iou not in HAND_IOU_MODES:
        raise ValueError(f"hand_iou={hand_iou!r}; expected one of {list(HAND_IOU_MODES)}")
    T = len(c["rgb"])
    final_window = max(1, T // 4) if final_window is None else max(1, min(int(final_window), T))
    min_views = max(1, (final_window + 1) // 2) if min_views is None else max(1, int(min_views))
    cfg = state.config
    voxel = cfg.voxel_size
    if trunc_voxel_multiplier is not None:
        trunc = float(trunc_voxel_multiplier)
    elif estimated_depth:
        trunc = max(cfg.trunc_voxel_multiplier, ESTIMATED_DEPTH_TRUNC_MULTIPLIER)
    else:
        trunc = cfg.trunc_voxel_multiplier
    if not (np.isfinite(trunc) and 0 < trunc <= 64):
        raise ValueError(f"trunc_voxel_multiplier={trunc_voxel_multiplier!r}; expected in (0, 64] voxels")
    sor_voxel = 2 * voxel if sor_voxel is None else float(sor_voxel)
    carve_tolerance = 0.5 * trunc * voxel if carve_tolerance is None else float(carve_tolerance)
    if carve_radius is None:
        carve_radius = (max(trunc, cfg.trunc_voxel_multiplier) + 1) * voxel

    dynamic = np.zeros(c["depth"].shape, bool)
    for m in c["object_masks"].values():
        dynamic |= m
    if c["hand_masks"] is not None:
        dynamic |= c["hand_masks"]
    if c["ignore_masks"] is not None:
        dynamic |= c["ignore_masks"]
    static = ~dynamic

    views = None  # the state (before the update) rendered along state_poses, objects included
    if state.num_blocks and (align or (carve_static and object_ids)):
        views = _state_views(state, c, max_frames)
    s, R, t = align_clip_to_state(state, c, static, views=views) if align else (1.0, np.eye(3), np.zeros(3))
    if align:
        logger.info("clip → state Sim(3): s=%.4f, |t|=%.4f", s, float(np.linalg.norm(t)))
    _apply_sim3_to_clip(c, s, R, t)
    static_views = views
    if views is not None and state.objects and carve_static and object_ids:
        static_views = _state_views(state, c, max_frames, include_objects=False)

    out = state if in_place else state.copy()
    report = UpdateReport(s, R, t, {}, {}, truncation_voxels=trunc)

    for oid in object_ids:
        mask = c["object_masks"][oid]
        new_pts, new_cols, per_frame = _object_observation(
            c,
            mask,
            depth_tolerance=depth_tolerance,
            final_window=final_window,
            min_views=min_views,
            voxel=voxel,
        )
        if len(new_pts) < 10:
            report.skipped[oid] = f"only {len(new_pts)} points survive filtering"
            continue
        if c["hand_masks"] is not None:  # spatial proximity: hand/object mask IoU (EgoSim)
            iou = float(hand_object_iou(c["hand_masks"], mask, hand_iou).max())
            if not iou > min_hand_iou:
                report.skipped[oid] = f"hand/object {hand_iou} IoU never above {min_hand_iou} (max {iou:.3f})"
                continue
        elif c["hand_keypoints"] is not None:  # fallback: distance to the hand keypoints
            near = _hand_distance(c, per_frame)
            if near > max_hand_distance:
                report.skipped[oid] = f"never within {max_hand_distance} m of a hand (closest {near:.3f} m)"
                continue
        keep = _statistical_inliers(new_pts, sor_neighbors, sor_std_ratio, sor_voxel)
        new_pts, new_cols = new_pts[keep], new_cols[keep]
        if carve_static and static_views is not None:  # the object as the static TSDF had fused it
            seeds = _old_place(c, mask, static_views, carve_tolerance)
            if oid in out.objects and len(seeds):  # a known object: only the TSDF surface on it
                from scipy.spatial import cKDTree

                d, _ = cKDTree(out.objects[oid].world_points()).query(seeds, k=1)
                seeds = seeds[d <= carve_tolerance]
            report.carved[oid] = out.clear_region(seeds, carve_radius) if len(seeds) else 0
        if oid in out.objects:
            obj = out.objects[oid]
            old_world = obj.world_points()
            delta = _estimate_motion(old_world, new_pts, voxel)
            if carve_static:
                report.carved[oid] = report.carved.get(oid, 0) + out.clear_region(old_world, 1.5 * voxel)
            new_pose = delta @ obj.pose
            inv = np.linalg.inv(new_pose)
            local_new = new_pts @ inv[:3, :3].T + inv[:3, 3]
            pts, cols = _voxel_merge(
                np.concatenate([obj.points, local_new]), np.concatenate([obj.colors, new_cols]), voxel
            )
            out.remove_object(oid)
            out.add_object(oid, pts, cols, new_pose)
            report.moved[oid] = delta
        else:  # seen for the first time as an object: a new point set, posed at its centroid
            pts, cols = _voxel_merge(new_pts, new_cols, voxel)
            pose = np.eye(4)
            pose[:3, 3] = pts.mean(0)
            out.add_object(oid, pts - pose[:3, 3].astype(np.float32), cols, pose)
            report.moved[oid] = np.eye(4)

    for tt in range(T):  # static fusion with per-frame outlier removal
        sel = static[tt] & (c["depth"][tt] > 0)
        ignore = ~static[tt]
        if sel.sum() > sor_neighbors:
            pts = _to_world(c["depth"][tt], c["K"], c["poses"][tt], sel)
            bad = np.zeros(sel.shape, bool)
            bad[sel] = ~_statistical_inliers(pts, sor_neighbors, sor_std_ratio, sor_voxel)
            ignore = ignore | bad
        out.integrate(
            c["rgb"][tt],
            c["depth"][tt],
            c["K"],
            c["poses"][tt],
            ignore_mask=ignore,
            trunc_voxel_multiplier=trunc,
        )
    logger.info(
        "state update: moved %s, skipped %s, carved %s", list(report.moved), report.skipped, report.carved
    )
    return (out, report) if return_report else out
