"""Geometric consistency metrics (EgoSim): Depth ERR and Cam ERR, with pluggable estimators.

* Depth ERR compares depth `[T, H, W]` of the predicted video with the reference (depth
  estimated on the ground-truth video, or ground-truth depth): per frame, the prediction is
  median-scaled (s = median(gt) / median(pred) over valid pixels), then AbsRel = mean |s·p − g| / g
  and RMSE = sqrt(mean (s·p − g)²), averaged over frames.
* Cam ERR compares camera-to-world poses `[T, 4, 4]` (OpenCV camera axes: x right, y down,
  z forward): the predicted trajectory is aligned to the reference with Sim(3) Umeyama
  (`egoworld.sim.align.umeyama`, scale corrected, rotation from the orientations when the
  positions span fewer than 3 dimensions), then ATE = RMSE of position errors and the rotation
  error = mean angle of R_ref^T R_aligned in degrees (both through `evo`'s APE).

Estimators map frames to depth or poses and can be swapped: ground truth (arrays passed in),
`DepthAnythingEstimator` (transformers, local weights), `Open3DOdometry` (RGB-D odometry).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- Depth ERR


def depth_errors(
    pred_depth: np.ndarray, ref_depth: np.ndarray, *, min_depth: float = 1e-3, max_depth: float | None = None
) -> dict[str, float]:
    """Median-scaled AbsRel and RMSE between depth maps `[T, H, W]` (mean over frames).

    Pixels count when both depths are finite, the reference is in (min_depth, max_depth] and the
    prediction is positive.
    """
    pred = np.asarray(pred_depth, dtype=np.float64)
    ref = np.asarray(ref_depth, dtype=np.float64)
    if pred.shape != ref.shape or pred.ndim != 3:
        raise ValueError(f"depth maps must both be [T, H, W] of one shape; got {pred.shape} and {ref.shape}")
    abs_rel, rmse = [], []
    for p, g in zip(pred, ref):
        valid = np.isfinite(p) & np.isfinite(g) & (g > min_depth) & (p > 0)
        if max_depth is not None:
            valid &= g <= max_depth
        if not valid.any():
            continue
        p, g = p[valid], g[valid]
        p = p * (np.median(g) / np.median(p))
        abs_rel.append(np.mean(np.abs(p - g) / g))
        rmse.append(np.sqrt(np.mean((p - g) ** 2)))
    if not abs_rel:
        raise ValueError("Depth ERR is undefined: no frame has valid depth pixels (expected positive depths)")
    return {"abs_rel": float(np.mean(abs_rel)), "rmse": float(np.mean(rmse))}


# --------------------------------------------------------------------------- Cam ERR


def _check_poses(poses: np.ndarray, what: str) -> np.ndarray:
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"{what} poses must be [T, 4, 4] camera-to-world; got shape {poses.shape}")
    return poses


# A trajectory whose positions have a spread eigenvalue ≤ this × the largest (a standard deviation
# under 1 % of the main one: odometry noise around a straight or planar path) counts as spanning
# fewer than 3 dimensions, and the alignment takes its rotation from the orientations.
PATH_RANK_TOL = 1e-4


def camera_errors(
    pred_c2w: np.ndarray, ref_c2w: np.ndarray, *, correct_scale: bool = True
) -> dict[str, float]:
    """ATE RMSE after Sim(3) Umeyama alignment, and mean rotation error (degrees), via `evo`.

    The prediction is aligned to the reference with `egoworld.sim.align.umeyama` on the camera
    positions (scale corrected unless `correct_scale` is False). Positions of either trajectory
    that span fewer than 3 dimensions (a straight drive, a planar path, a camera turning in place;
    `PATH_RANK_TOL`) leave the rotation about the path free; there the alignment's rotation is
    the chordal mean of R_ref_i R_pred_iᵀ, so a perfect prediction in another world frame scores
    0 either way.
    evo's APE then gives the ATE (translation part, RMSE) and the rotation angle error (mean).

    Returns {"ate_rmse", "rot_err_deg", "scale"}, where `scale` is the Sim(3) scale applied to the
    prediction. Needs T ≥ 3 poses.
    """
    from evo.core import lie_algebra as lie
    from evo.core import metrics
    from evo.core.trajectory import PosePath3D

    from egoworld.sim.align import umeyama

    pred = _check_poses(pred_c2w, "predicted")
    ref = _check_poses(ref_c2w, "reference")
    if pred.shape != ref.shape:
        raise ValueError(
            f"pose sequences differ in length: {pred.shape[0]} vs {ref.shape[0]} (expected equal)"
        )
    if pred.shape[0] < 3:
        raise ValueError(f"Cam ERR needs at least 3 poses for Sim(3) alignment; got {pred.shape[0]}")
    scale, r, t = umeyama(
        pred[:, :3, 3],
        ref[:, :3, 3],
        with_scale=correct_scale,
        rotations=(pred[:, :3, :3], ref[:, :3, :3]),
        rank_tol=PATH_RANK_TOL,
    )
    est = PosePath3D(poses_se3=list(pred))
    gt = PosePath3D(poses_se3=list(ref))
    if correct_scale:
        est.scale(scale)
    est.transform(lie.se3(r, t))
    ape_t = metrics.APE(metrics.PoseRelation.translation_part)
    ape_t.process_data((gt, est))
    ape_r = metrics.APE(metrics.PoseRelation.rotation_angle_deg)
    ape_r.process_data((gt, est))
    return {
        "ate_rmse": float(ape_t.get_statistic(metrics.StatisticsType.rmse)),
        "rot_err_deg": float(ape_r.get_statistic(metrics.StatisticsType.mean)),
        "scale": float(scale),
    }


# --------------------------------------------------------------------------- estimators


class DepthEstimator(Protocol):
    """Maps uint8 frames `[T, H, W, 3]` to depth `[T, H, W]` (any consistent unit)."""

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


class PoseEstimator(Protocol):
    """Maps frames `[T, H, W, 3]`, depth `[T, H, W]` and intrinsics `[3, 3]` to c2w poses `[T, 4, 4]`."""

    def __call__(self, frames: np.ndarray, depth: np.ndarray, intrinsics: np.ndarray) -> np.ndarray: ...


class DepthAnythingEstimator:
    """Monocular depth with a transformers depth-estimation model (Depth Anything v1/v2) from a local folder.

    Args:
        model_dir: folder with `config.json`, the weights and `preprocessor_config.json`, as written by
            `save_pretrained` (e.g. a local copy of `depth-anything/Depth-Anything-V2-Small-hf`).
        output: "disparity" for the relative models (their output is inverse depth up to an unknown
            scale and shift; it is inverted here), "depth" for metric models.
        device: torch device.
        min_disparity_quantile: with `output="disparity"`, pixels whose disparity is at or below
            this quantile of their frame (or ≤ 0) become NaN (unknown depth) instead of the huge
            depths 1/d gives near d = 0 (the sky, far walls, and the model's unknown shift).

    Returns depth `[T, H, W]` in the model's arbitrary unit (relative models), NaN where unknown.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        output: str = "disparity",
        device: str = "cpu",
        min_disparity_quantile: float = 0.02,
    ):
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"depth model not found: {model_dir / 'config.json'} is missing; download a Depth Anything "
                "checkpoint (e.g. depth-anything/Depth-Anything-V2-Small-hf) on a machine with network, "
                "copy the folder here and pass it with --depth-model"
            )
        if output not in ("disparity", "depth"):
            raise ValueError(f"output must be 'disparity' or 'depth'; got {output!r}")
        if not 0.0 <= min_disparity_quantile < 1.0:
            raise ValueError(f"min_disparity_quantile must be in [0, 1); got {min_disparity_quantile}")
        self.output = output
        self.device = device
        self.min_disparity_quantile = min_disparity_quantile
        self.processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
        self.model = (
            AutoModelForDepthEstimation.from_pretrained(model_dir, local_files_only=True).to(device).eval()
        )

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch

        frames = np.asarray(frames)
        h, w = frames.shape[1:3]
        out = []
        with torch.no_grad():
            for frame in frames:
                inputs = self.processor(images=frame, return_tensors="pt").to(self.device)
                pred = self.model(**inputs).predicted_depth  # [1, h', w']
                pred = torch.nn.functional.interpolate(pred[:, None], size=(h, w), mode="bicubic")[0, 0]
                out.append(pred.float().cpu().numpy())
        pred = np.stack(out)  # [T, H, W]
        if self.output == "depth":
            return pred
        return disparity_to_depth(pred, self.min_disparity_quantile)


def disparity_to_depth(disparity: np.ndarray, min_quantile: float = 0.02) -> np.ndarray:
    """1 / disparity `[T, H, W]`, NaN where the disparity is ≤ 0 or at/below its frame's `min_quantile`."""
    disp = np.asarray(disparity, dtype=np.float64)
    floor = np.quantile(disp.reshape(len(disp), -1), min_quantile, axis=1)[:, None, None]  # [T, 1, 1]
    valid = np.isfinite(disp) & (disp > np.maximum(floor, 0.0))
    depth = np.full(disp.shape, np.nan, dtype=np.float32)
    depth[valid] = 1.0 / disp[valid]
    return depth


def normalize_depth(depth: np.ndarray, median: float = 2.0) -> np.ndarray:
    """Scale depth `[T, H, W]` of unknown unit so that its median over all valid pixels is `median`.

    One factor for the whole video (per-frame factors would erase the true change of scene depth
    along the path). Non-finite and non-positive pixels stay as they are.
    """
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise ValueError("depth has no valid (finite, positive) pixel; cannot normalise it")
    return depth * np.float32(median / float(np.median(depth[valid])))


class Open3DOdometry:
    """Camera poses by chaining Open3D RGB-D odometry between consecutive frames.

    Args:
        method: "hybrid" (photometric + geometric) or "color".
        depth_max: depth beyond this is ignored (same unit as the depth given, after `median_depth`).
        median_depth: if set, the depth of each video is first scaled so that its median is this
            many units (`normalize_depth`): for estimated depth of unknown scale (a relative Depth
            Anything model), whose raw values have nothing to do with `depth_max` or Open3D's
            other metric thresholds. None (default) keeps metric depth as given.
        reference: "previous" (default) registers each frame to the one before and chains the
            steps; "first" registers each frame to the first frame given (a keyframe), starting from
            the previous frame's estimate, so errors do not accumulate over the call — for short
            spans that keep the first frame in view (`egoworld.sim.prepare` registers windows of
            frames this way and chains the windows).

    Non-finite depth counts as unknown (0 for Open3D).
    """

    def __init__(
        self,
        *,
        method: str = "hybrid",
        depth_max: float = 10.0,
        median_depth: float | None = None,
        reference: str = "previous",
    ):
        if method not in ("hybrid", "color"):
            raise ValueError(f"method must be 'hybrid' or 'color'; got {method!r}")
        if median_depth is not None and not median_depth > 0:
            raise ValueError(f"median_depth must be positive or None; got {median_depth}")
        if reference not in ("previous", "first"):
            raise ValueError(f"reference must be 'previous' or 'first'; got {reference!r}")
        self.method = method
        self.depth_max = depth_max
        self.median_depth = median_depth
        self.reference = reference

    def __call__(self, frames: np.ndarray, depth: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
        import open3d as o3d

        frames = np.asarray(frames)
        depth = np.asarray(depth, dtype=np.float32)
        if depth.shape != frames.shape[:3]:
            raise ValueError(
                f"depth {depth.shape} does not match frames {frames.shape[:3]} (expected [T, H, W])"
            )
        if self.median_depth is not None:
            depth = normalize_depth(depth, self.median_depth)
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
        t, h, w = depth.shape
        k = np.asarray(intrinsics, dtype=np.float64)
        cam = o3d.camera.PinholeCameraIntrinsic(w, h, k[0, 0], k[1, 1], k[0, 2], k[1, 2])
        jac = (
            o3d.pipelines.odometry.RGBDOdometryJacobianFromHybridTerm()
            if self.method == "hybrid"
            else o3d.pipelines.odometry.RGBDOdometryJacobianFromColorTerm()
        )
        option = o3d.pipelines.odometry.OdometryOption(depth_max=self.depth_max)

        def rgbd(i: int):
            return o3d.geometry.RGBDImage.create_from_color_and_depth(
                o3d.geometry.Image(np.ascontiguousarray(frames[i])),
                o3d.geometry.Image(np.ascontiguousarray(depth[i])),
                depth_scale=1.0,
                depth_trunc=self.depth_max,
                convert_rgb_to_intensity=True,
            )

        poses = [np.eye(4)]
        first = prev = rgbd(0)
        for i in range(1, t):
            cur = rgbd(i)
            if self.reference == "first":  # frame i -> frame 0, from frame i-1's estimate
                ok, c2w, _ = o3d.pipelines.odometry.compute_rgbd_odometry(
                    cur, first, cam, poses[-1], jac, option
                )
                if not ok:
                    logger.warning("Open3D odometry failed for frame %d; assuming frame %d's pose", i, i - 1)
                poses.append(c2w if ok else poses[-1])
                continue
            ok, t_cur_to_prev, _ = o3d.pipelines.odometry.compute_rgbd_odometry(
                cur, prev, cam, np.eye(4), jac, option
            )
            if not ok:
                logger.warning(
                    "Open3D odometry failed between frames %d and %d; assuming no motion", i - 1, i
                )
                t_cur_to_prev = np.eye(4)
            poses.append(poses[-1] @ t_cur_to_prev)
            prev = cur
        return np.stack(poses)  # [T, 4, 4] camera-to-world of frame 0
