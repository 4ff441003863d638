"""Training-free state update U (EgoSim §3.3): reconstruct a generated clip and fold it into the state.

Steps, in order:

1. **Sim(3) alignment** of the clip's reconstruction (its depths and camera poses, e.g. from a
   monocular estimator, known only up to a similarity) to the state: the state is rendered at the
   trajectory it was rendered along for generation (``clip["state_poses"]``, default the clip's
   poses), static pixels covered by both give 3D correspondences, and a robust Umeyama fit gives
   ``s, R, t``; depths are scaled by ``s`` and poses mapped into the state's frame.
2. **Object filtering**, per interacted object id: *spatial proximity* — an object is updated only
   if its points come within ``max_hand_distance`` of a hand keypoint in some frame (when hand
   keypoints are given); *depth consistency* — mask pixels whose depth is more than
   ``depth_tolerance`` from the mask's median depth in that frame are dropped; *temporal
   completeness* — of the points seen in the final ``final_window`` frames (the object at rest),
   only voxels seen in at least ``min_views`` of those frames are kept.
3. **Moving the object**: its new pose is the old one composed with the rigid transform that takes
   its old points to the new observation (centroid shift refined by ICP); the old place is cleared
   from the static TSDF (when ``carve_static``), and the new points are fused into the object's
   point set (voxel-downsampled, statistical outlier removal).
4. **Static fusion**: every frame is TSDF-fused with object and hand pixels ignored, after
   per-frame statistical outlier removal of its back-projected points.

``update_state`` works on a copy and returns it unless ``in_place=True``; it never writes files,
so a state saved on disk is untouched whatever happens (save the result yourself, atomically).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from egoworld.sim.align import robust_umeyama
from egoworld.sim.camera import backproject, validate_intrinsics, validate_poses
from egoworld.sim.hands import _as_hands
from egoworld.sim.render import render_state
from egoworld.sim.state import SceneState

logger = logging.getLogger(__name__)


@dataclass
class UpdateReport:
    """What :func:`update_state` did: the similarity applied to the clip and per-object outcomes."""

    scale: float
    rotation: np.ndarray  # [3, 3]
    translation: np.ndarray  # [3]
    moved: dict[Any, np.ndarray]  # object id → rigid delta [4, 4] applied to its old pose
    skipped: dict[Any, str]  # object id → reason


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
        "hand_keypoints": hands,
    }


def _to_world(depth: np.ndarray, K: np.ndarray, pose: np.ndarray, sel: np.ndarray) -> np.ndarray:
    pc = backproject(depth, K)[sel]  # [N, 3]
    return pc @ pose[:3, :3].T + pose[:3, 3]


def align_clip_to_state(
    state: SceneState, c: dict, static: np.ndarray, *, max_frames: int = 4, min_points: int = 50
) -> tuple[float, np.ndarray, np.ndarray]:
    """Sim(3) taking the clip's reconstruction into the state's frame (identity if the state is empty)."""
    if state.num_blocks == 0:
        return 1.0, np.eye(3), np.zeros(3)
    T, H, W = c["depth"].shape
    frames = np.unique(np.linspace(0, T - 1, min(max_frames, T)).round().astype(int))
    rend = render_state(state, c["K"], c["state_poses"][frames], H, W)
    src, dst = [], []
    for k, t in enumerate(frames):
        sel = static[t] & (c["depth"][t] > 0) & ~rend.mask[k]
        src.append(_to_world(c["depth"][t], c["K"], c["poses"][t], sel))
        dst.append(_to_world(rend.depth[k], c["K"], c["state_poses"][t], sel))
    src, dst = np.concatenate(src), np.concatenate(dst)
    if len(src) < min_points:
        logger.warning("only %d static correspondences with the state; not aligning the clip", len(src))
        return 1.0, np.eye(3), np.zeros(3)
    return robust_umeyama(src, dst)


def _apply_sim3_to_clip(c: dict, s: float, R: np.ndarray, t: np.ndarray) -> None:
    c["depth"] = (c["depth"] * s).astype(np.float32)
    poses = c["poses"].copy()
    poses[:, :3, :3] = R @ poses[:, :3, :3]
    poses[:, :3, 3] = s * poses[:, :3, 3] @ R.T + t
    c["poses"] = poses
    if c["hand_keypoints"] is not None:
        c["hand_keypoints"] = s * c["hand_keypoints"] @ R.T + t


def _statistical_inliers(points: np.ndarray, nb_neighbors: int, std_ratio: float) -> np.ndarray:
    """Boolean [N] of points kept by Open3D's statistical outlier removal."""
    import open3d as o3d

    if len(points) <= nb_neighbors:
        return np.ones(len(points), bool)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64)))
    _, keep = pc.remove_statistical_outlier(nb_neighbors=nb_neighbors, std_ratio=std_ratio)
    out = np.zeros(len(points), bool)
    out[np.asarray(keep, dtype=np.int64)] = True
    return out


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
    max_hand_distance: float = 0.15,
    depth_tolerance: float = 0.15,
    final_window: int | None = None,
    min_views: int | None = None,
    carve_static: bool = True,
    sor_neighbors: int = 20,
    sor_std_ratio: float = 2.0,
    return_report: bool = False,
) -> SceneState | tuple[SceneState, UpdateReport]:
    """Fold a generated clip into the state; returns the updated state (a copy unless `in_place`).

    Args:
        state: the state the clip was generated from.
        clip: ``rgb`` [T, H, W, 3] uint8, ``depth`` [T, H, W] float32 metres (0 = unknown), ``K`` [3, 3],
            ``poses`` [T, 4, 4] camera-to-world of the clip's reconstruction; optional ``state_poses``
            [T, 4, 4] (the trajectory the state was rendered along; default ``poses``),
            ``object_masks`` {id: [T, H, W] bool}, ``hand_masks`` [T, H, W] bool,
            ``hand_keypoints`` [T, 21, 3] / [T, 2, 21, 3] in the clip's world frame.
        object_ids: the interacted objects to move/fuse (each needs a mask in ``object_masks``).
        in_place: update `state` itself instead of a copy.
        align: fit the Sim(3) from the clip's reconstruction to the state first.
        max_hand_distance: an object farther than this (metres) from every hand keypoint in every
            frame is not updated (only checked when hand keypoints are given).
        depth_tolerance: per-frame depth-consistency bound around the mask's median depth (metres).
        final_window: frames at the clip's end where the object is taken to be at rest (default T // 4, >= 1).
        min_views: frames of that window a voxel must be seen in (default half the window, >= 1).
        carve_static: clear a moved object's old place from the static TSDF.
        sor_neighbors, sor_std_ratio: statistical outlier removal settings.
        return_report: also return an :class:`UpdateReport`.
    """
    c = _check_clip(clip)
    missing = [o for o in object_ids if o not in c["object_masks"]]
    if missing:
        raise ValueError(
            f"object ids {missing!r} have no mask in clip['object_masks'] (has {list(c['object_masks'])})"
        )
    T = len(c["rgb"])
    final_window = max(1, T // 4) if final_window is None else max(1, min(int(final_window), T))
    min_views = max(1, (final_window + 1) // 2) if min_views is None else max(1, int(min_views))
    voxel = state.config.voxel_size

    dynamic = np.zeros(c["depth"].shape, bool)
    for m in c["object_masks"].values():
        dynamic |= m
    if c["hand_masks"] is not None:
        dynamic |= c["hand_masks"]
    static = ~dynamic

    s, R, t = align_clip_to_state(state, c, static) if align else (1.0, np.eye(3), np.zeros(3))
    if align:
        logger.info("clip → state Sim(3): s=%.4f, |t|=%.4f", s, float(np.linalg.norm(t)))
    _apply_sim3_to_clip(c, s, R, t)

    out = state if in_place else state.copy()
    report = UpdateReport(s, R, t, {}, {})

    for oid in object_ids:
        new_pts, new_cols, per_frame = _object_observation(
            c,
            c["object_masks"][oid],
            depth_tolerance=depth_tolerance,
            final_window=final_window,
            min_views=min_views,
            voxel=voxel,
        )
        if len(new_pts) < 10:
            report.skipped[oid] = f"only {len(new_pts)} points survive filtering"
            continue
        if c["hand_keypoints"] is not None:  # spatial proximity to the hand
            from scipy.spatial import cKDTree

            near = np.inf
            for tt, pts in enumerate(per_frame):
                kp = c["hand_keypoints"][tt].reshape(-1, 3)
                kp = kp[np.all(np.isfinite(kp), axis=1)]
                if len(pts) and len(kp):
                    near = min(near, float(cKDTree(kp).query(pts, k=1)[0].min()))
            if near > max_hand_distance:
                report.skipped[oid] = f"never within {max_hand_distance} m of a hand (closest {near:.3f} m)"
                continue
        keep = _statistical_inliers(new_pts, sor_neighbors, sor_std_ratio)
        new_pts, new_cols = new_pts[keep], new_cols[keep]
        if oid in out.objects:
            obj = out.objects[oid]
            old_world = obj.world_points()
            delta = _estimate_motion(old_world, new_pts, voxel)
            if carve_static:
                out.clear_region(old_world, 1.5 * voxel)
            new_pose = delta @ obj.pose
            inv = np.linalg.inv(new_pose)
            local_new = new_pts @ inv[:3, :3].T + inv[:3, 3]
            pts, cols = _voxel_merge(
                np.concatenate([obj.points, local_new]), np.concatenate([obj.colors, new_cols]), voxel
            )
            out.remove_object(oid)
            out.add_object(oid, pts, cols, new_pose)
            report.moved[oid] = delta
        else:
            pts, cols = _voxel_merge(new_pts, new_cols, voxel)
            out.add_object(oid, pts, cols, np.eye(4))
            report.moved[oid] = np.eye(4)

    for tt in range(T):  # static fusion with per-frame outlier removal
        sel = static[tt] & (c["depth"][tt] > 0)
        ignore = ~static[tt]
        if sel.sum() > sor_neighbors:
            pts = _to_world(c["depth"][tt], c["K"], c["poses"][tt], sel)
            bad = np.zeros(sel.shape, bool)
            bad[sel] = ~_statistical_inliers(pts, sor_neighbors, sor_std_ratio)
            ignore = ignore | bad
        out.integrate(c["rgb"][tt], c["depth"][tt], c["K"], c["poses"][tt], ignore_mask=ignore)
    logger.info("state update: moved %s, skipped %s", list(report.moved), report.skipped)
    return (out, report) if return_report else out
