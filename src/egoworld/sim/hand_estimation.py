"""3-D hand joints from video frames: 2-D keypoints of a COCO-WholeBody pose model lifted with metric depth.

The plain video layout (`egoworld.sim.plain_video`) needs per frame the 21 joints of each hand in
camera coordinates. This module estimates them from the frames and a metric depth map per frame:

1. **2-D keypoints** (`WholeBodyPoseModel`): a local transformers pose-estimation folder
   (`AutoModelForPoseEstimation` + `AutoImageProcessor`, e.g. `VitPoseForPoseEstimation` +
   `VitPoseImageProcessor`) whose head predicts the 133 COCO-WholeBody keypoints (config
   ``num_labels == 133``; any other count is refused). The processor decodes the heatmaps
   (`post_process_pose_estimation`: argmax, DARK refinement, back to image pixels) into keypoints
   ``(u, v)`` and scores (the heatmap peak). ViTPose is **top-down**: it expects one box around one
   person. Egocentric video shows the wearer's hands and forearms but not their body, so the box is
   the **whole frame** ``[0, 0, W, H]``. Limits of that choice: the processor pads the box by 1.25
   and widens it to the model's input aspect (192 x 256 for the usual checkpoints), so a 16:9 frame
   is seen at about 154 x 86 pixels of the 192 x 256 input and a hand covers only a few heatmap
   cells; the model was trained on boxes around whole people, mostly seen from the front, so with
   no body in view its hand keypoints lose that context, and "left"/"right" (the person's own, as
   COCO-WholeBody labels them) may be swapped for hands seen from behind; several people in view
   share one set of keypoints. A hand detector giving per-hand boxes would do better; none is used
   here. ViTPose++ checkpoints (backbone ``num_experts > 1``) get ``dataset_index`` = 5, the
   COCO-WholeBody expert (transformers' ViTPose docs: COCO 0, AiC 1, MPII 2, AP-10K 3, APT-36K 4,
   COCO-WholeBody 5), one per image as the backbone expects.
2. **Lifting** (`lift_keypoints`): each keypoint's depth z is the median of the finite, positive
   depth in a `DEPTH_WINDOW` x `DEPTH_WINDOW` pixel window (5 x 5) centred on its rounded pixel
   (robust to a few pixels of background or edge noise around a thin finger), and the visible
   surface point is z·K⁻¹[u, v, 1]. The depth map sees the skin, about a finger's radius in front
   of the joint centre the plain layout stores, so the point is moved `SURFACE_OFFSET` (1 cm)
   further along its viewing ray (a constant: fingers are about 1.5-2 cm thick, the palm more; the
   keypoint's pixel is unchanged). A joint is unknown (NaN, confidence 0) when its score is below
   ``min_score`` (default `MIN_SCORE`) or ≤ 0, its pixel lies outside the image, or its window has
   no finite positive depth. A hand with fewer than `MIN_HAND_JOINTS` (8) known joints in a frame
   is dropped whole (NaN): a few scattered confident joints are more often a mistaken detection
   than a hand. The plain reader accepts the per-joint NaN of a kept hand.
3. **Confidence**: the pose model's score (the heatmap peak, about 1 at a confident keypoint)
   clipped to [0, 1] becomes ``hand_confidence``; 0 where the joint is unknown.

Depth must be **metric**: per-episode depth files (`egoworld.sim.prepare_depth.SuppliedDepth`) or
a metric Depth Anything folder (`MetricDepthModel`, config ``depth_estimation_type == "metric"``).
Relative models are refused: `sim prepare` aligns them per frame to the hand joints, which here are
what is being estimated.

Hand keypoint order (checked against the COCO-WholeBody definition, mmpose's
``configs/_base_/datasets/coco_wholebody.py``: ids 91-111 ``left_hand_root, left_thumb1-4,
left_forefinger1-4, left_middle_finger1-4, left_ring_finger1-4, left_pinky_finger1-4``, ids
112-132 the same for the right hand, its skeleton linking wrist → thumb1 → … → thumb4 and wrist →
forefinger1 → … → forefinger4 etc.): the hand root (wrist), then each finger from its base to its
tip — the OpenPose hand order the project uses (`egoworld.sim.egodex.HAND_JOINTS`: wrist, thumb
knuckle … tip, index … little finger), so each block of 21 maps onto it one to one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

WHOLEBODY_KEYPOINTS = 133  # COCO-WholeBody: body 0-16, feet 17-22, face 23-90, hands 91-132
HAND_KEYPOINTS = (slice(91, 112), slice(112, 133))  # left, right (egoworld.sim.egodex.SIDES order)
COCO_WHOLEBODY_DATASET_INDEX = 5  # the ViTPose++ expert trained on COCO-WholeBody
DEPTH_WINDOW = 5  # pixels a side of the window whose median depth a keypoint gets
SURFACE_OFFSET = 0.01  # metres from the visible skin to the joint centre, along the viewing ray
MIN_SCORE = 0.3  # keypoints scored below this are unknown
MIN_HAND_JOINTS = 8  # a hand with fewer known joints in a frame is dropped whole
BATCH = 8  # frames per forward pass


def lift_keypoints(
    uv: np.ndarray,
    scores: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,
    *,
    min_score: float = MIN_SCORE,
    window: int = DEPTH_WINDOW,
    surface_offset: float = SURFACE_OFFSET,
    min_joints: int = MIN_HAND_JOINTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Hand joints [N, 2, 21, 3] in camera coordinates (metres, NaN = unknown) and their confidence
    [N, 2, 21] in [0, 1] from keypoint pixels `uv` [N, 2, 21, 2] (pixel centres at integers),
    `scores` [N, 2, 21] and metric `depth` [N, H, W] (0 or non-finite = unknown), with intrinsics
    `K` [3, 3] (rules in the module docstring)."""
    from egoworld.sim.camera import validate_intrinsics

    uv = np.asarray(uv, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    depth = np.asarray(depth, dtype=np.float64)
    K = validate_intrinsics(K)
    n = len(depth)
    if depth.ndim != 3 or uv.shape != (n, 2, 21, 2) or scores.shape != (n, 2, 21):
        raise ValueError(
            f"uv {list(uv.shape)}, scores {list(scores.shape)}, depth {list(depth.shape)}; expected "
            "[N, 2, 21, 2], [N, 2, 21] and [N, H, W] with the same N"
        )
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window={window}; expected an odd number of pixels >= 1")
    if surface_offset < 0:
        raise ValueError(f"surface_offset={surface_offset}; expected metres >= 0")
    H, W = depth.shape[1:]
    known = np.isfinite(uv).all(-1) & np.isfinite(scores) & (scores > 0) & (scores >= min_score)
    px = np.rint(np.where(known[..., None], uv, -1.0)).astype(np.int64)  # [N, 2, 21, 2]
    u, v = px[..., 0], px[..., 1]
    known &= (u >= 0) & (u < W) & (v >= 0) & (v < H)
    z = _window_median(depth, u, v, window)  # [N, 2, 21]
    known &= np.isfinite(z)
    known &= (known.sum(-1) >= min_joints)[..., None]
    rays = np.stack([uv[..., 0], uv[..., 1], np.ones(uv.shape[:-1])], -1) @ np.linalg.inv(K).T  # z = 1
    surface = np.where(known, z, np.nan)[..., None] * rays  # [N, 2, 21, 3]
    with np.errstate(invalid="ignore"):
        hands = surface + surface_offset * surface / np.linalg.norm(surface, axis=-1, keepdims=True)
    confidence = np.where(known, np.clip(np.nan_to_num(scores), 0.0, 1.0), 0.0)
    return hands, confidence


def _window_median(depth: np.ndarray, u: np.ndarray, v: np.ndarray, window: int) -> np.ndarray:
    """Median of the finite positive depth [N, H, W] in the window around each pixel (u, v) [N, ...]
    (indices in range or not; out-of-image window pixels do not count), NaN where there is none."""
    N, H, W = depth.shape
    r = window // 2
    d = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan)
    frame = np.arange(N).reshape((N,) + (1,) * (u.ndim - 1))
    samples = []
    for dv in range(-r, r + 1):
        for du in range(-r, r + 1):
            uu, vv = u + du, v + dv
            inside = (uu >= 0) & (uu < W) & (vv >= 0) & (vv < H)
            value = d[frame, np.clip(vv, 0, H - 1), np.clip(uu, 0, W - 1)]
            samples.append(np.where(inside, value, np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: NaN, as wanted
        return np.nanmedian(np.stack(samples, -1), axis=-1)


def _config(model_dir: Path, flag: str, what: str):
    """The transformers config of a local folder, or one line saying why not."""
    from transformers import AutoConfig

    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{flag} {model_dir}: config.json is missing; expected a local {what} folder written by "
            "save_pretrained (download it on a machine with network and copy it here)"
        )
    try:
        return AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except (ValueError, KeyError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{flag} {model_dir}: config.json cannot be read ({first})") from None


def check_pose_model(model_dir: str | Path):
    """The config of a local COCO-WholeBody pose folder (`num_labels` 133), else one-line ValueError /
    FileNotFoundError; reads config.json only."""
    model_dir = Path(model_dir)
    config = _config(model_dir, "--pose-model", "COCO-WholeBody pose-estimation (ViTPose)")
    count = getattr(config, "num_labels", None)
    if count != WHOLEBODY_KEYPOINTS:
        raise ValueError(
            f"--pose-model {model_dir} predicts {count} keypoints; expected {WHOLEBODY_KEYPOINTS} "
            "(COCO-WholeBody: body, feet, face and both hands' 21 joints, e.g. a ViTPose wholebody "
            "checkpoint in the transformers layout)"
        )
    return config


def check_metric_depth_model(model_dir: str | Path):
    """The config of a local metric Depth Anything folder, else one-line ValueError / FileNotFoundError
    (relative models refused); reads config.json only."""
    model_dir = Path(model_dir)
    config = _config(model_dir, "--depth-model", "metric Depth Anything")
    family = getattr(config, "model_type", "unknown")
    if family != "depth_anything":
        raise ValueError(
            f"--depth-model {model_dir} holds a {family!r} model; expected a metric Depth Anything folder "
            "(e.g. depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf)"
        )
    kind = getattr(config, "depth_estimation_type", "relative")
    if kind != "metric":
        raise ValueError(
            f"--depth-model {model_dir} is a {kind} Depth Anything model; hand estimation needs metric "
            "depth (depth_estimation_type 'metric', e.g. Depth-Anything-V2-Metric-Indoor-Small-hf) or "
            "--depth files: a relative model is aligned to the hand joints, which are what this "
            "step estimates"
        )
    return config


class MetricDepthModel:
    """Metric depth [N, H, W] in metres of frames [N, H, W, 3] uint8 from a local metric Depth Anything
    folder (`egoworld.metrics.geometry.DepthAnythingEstimator` with output "depth")."""

    def __init__(self, model_dir: str | Path, *, device: str = "cpu"):
        from egoworld.metrics.geometry import DepthAnythingEstimator

        self.model_dir = Path(model_dir)
        check_metric_depth_model(self.model_dir)
        try:
            self.estimator = DepthAnythingEstimator(self.model_dir, output="depth", device=device)
        except (ValueError, KeyError, OSError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"--depth-model {self.model_dir} cannot be loaded ({first})") from None

    def __call__(self, frames_NHWC: np.ndarray) -> np.ndarray:
        return self.estimator(frames_NHWC).astype(np.float32)  # [N, H, W] metres


class WholeBodyPoseModel:
    """2-D COCO-WholeBody keypoints of frames from a local transformers pose-estimation folder.

    Args:
        model_dir: folder with config.json (``num_labels`` 133), the weights and
            preprocessor_config.json, as `save_pretrained` writes them (e.g. a ViTPose wholebody
            checkpoint converted to the transformers layout).
        device: torch device.
        dataset_index: the MoE expert of a ViTPose++ model (backbone ``num_experts > 1``); None
            means `COCO_WHOLEBODY_DATASET_INDEX` (5). Refused for a model without experts.
        batch_size: frames per forward pass.

    Each frame's box is the whole frame (module docstring).
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        dataset_index: int | None = None,
        batch_size: int = BATCH,
    ):
        from transformers import AutoImageProcessor, AutoModelForPoseEstimation

        self.model_dir = Path(model_dir)
        config = check_pose_model(self.model_dir)
        experts = int(getattr(getattr(config, "backbone_config", None), "num_experts", 1) or 1)
        if experts > 1:
            index = COCO_WHOLEBODY_DATASET_INDEX if dataset_index is None else int(dataset_index)
            if not 0 <= index < experts:
                raise ValueError(
                    f"dataset_index={index}; the model at {self.model_dir} has {experts} experts, expected "
                    f"0 … {experts - 1} (ViTPose++: {COCO_WHOLEBODY_DATASET_INDEX} = COCO-WholeBody)"
                )
            self.dataset_index = index
        elif dataset_index is not None:
            raise ValueError(
                f"dataset_index={dataset_index}; the model at {self.model_dir} has no experts (it applies "
                "to ViTPose++ models, backbone num_experts > 1)"
            )
        else:
            self.dataset_index = None
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; expected at least 1")
        self.batch_size = batch_size
        self.device = device
        try:
            self.processor = AutoImageProcessor.from_pretrained(self.model_dir, local_files_only=True)
            self.model = AutoModelForPoseEstimation.from_pretrained(self.model_dir, local_files_only=True)
        except (ValueError, KeyError, OSError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"--pose-model {self.model_dir} cannot be loaded ({first})") from None
        if not hasattr(self.processor, "post_process_pose_estimation"):
            raise ValueError(
                f"--pose-model {self.model_dir}: its image processor {type(self.processor).__name__} has no "
                "post_process_pose_estimation; expected a top-down pose model's (VitPoseImageProcessor)"
            )
        self.model = self.model.to(device).eval()

    def __call__(self, frames_NHWC: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints [N, 133, 2] (pixels (u, v), centres at integers) and scores [N, 133] of frames
        [N, H, W, 3] uint8, one whole-frame box each."""
        import torch

        frames = np.asarray(frames_NHWC)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames are {frames.dtype} {list(frames.shape)}; expected uint8 [N, H, W, 3]")
        H, W = frames.shape[1:3]
        uv, scores = [], []
        for start in range(0, len(frames), self.batch_size):
            batch = list(frames[start : start + self.batch_size])
            boxes = [[[0.0, 0.0, float(W), float(H)]] for _ in batch]  # COCO xywh: the whole frame
            inputs = self.processor(images=batch, boxes=boxes, return_tensors="pt").to(self.device)
            if self.dataset_index is not None:
                inputs["dataset_index"] = torch.full((len(batch),), self.dataset_index, device=self.device)
            with torch.no_grad():
                outputs = self.model(**inputs)
            for (result,) in self.processor.post_process_pose_estimation(outputs, boxes=boxes):
                uv.append(result["keypoints"].float().cpu().numpy())  # [133, 2]
                scores.append(result["scores"].float().cpu().numpy().reshape(-1))  # [133]
        return np.stack(uv), np.stack(scores)

    def hands(self, frames_NHWC: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The hands' keypoints [N, 2, 21, 2] (left, right; `HAND_KEYPOINTS`) and scores [N, 2, 21]."""
        uv, scores = self(frames_NHWC)
        return (
            np.stack([uv[:, s] for s in HAND_KEYPOINTS], 1),
            np.stack([scores[:, s] for s in HAND_KEYPOINTS], 1),
        )


class HandEstimator:
    """Frames [N, H, W, 3] uint8 + metric depth [N, H, W] + K [3, 3] → hands [N, 2, 21, 3] in camera
    coordinates and confidence [N, 2, 21] (`WholeBodyPoseModel`, then `lift_keypoints` with
    `min_score` and the keyword arguments `lift`: window, surface_offset, min_joints)."""

    def __init__(self, pose: WholeBodyPoseModel, *, min_score: float = MIN_SCORE, **lift):
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score={min_score}; expected a score in [0, 1]")
        self.pose = pose
        self.min_score = min_score
        self.lift = lift

    def __call__(
        self, frames_NHWC: np.ndarray, depth_NHW: np.ndarray, K: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if np.shape(depth_NHW) != np.shape(frames_NHWC)[:3]:
            raise ValueError(
                f"depth {list(np.shape(depth_NHW))} does not match frames {list(np.shape(frames_NHWC))}; "
                "expected one [H, W] map per frame"
            )
        uv, scores = self.pose.hands(frames_NHWC)
        return lift_keypoints(uv, scores, depth_NHW, K, min_score=self.min_score, **self.lift)
