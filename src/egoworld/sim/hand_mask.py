"""Hand (and forearm) masks from 3-D hand keypoints: the hand's silhouette at physical size.

Each bone is a capsule of a given radius (metres) around the segment between two keypoints; its
silhouette in a pinhole camera is drawn as the quadrilateral joining the two end discs (radius
r·f/z at each end, so a bone pointing away from the camera tapers) plus the discs. The palm is
the filled convex hull of the wrist and the five finger bases, with its outline drawn as
capsules of the palm radius; the forearm is a capsule from the forearm joint to the wrist.
Segments are clipped to the camera's front (z ≥ `NEAR`) before projection. A hand whose forearm
joint is not given (the closed loop's actions are 21 keypoints) gets one estimated
(`estimate_forearms`): `FOREARM_LENGTH` from the wrist, away from the knuckles.

`Sam2HandSegmenter` (optional, a local SAM 2 checkpoint) segments the hands in the frames with
the SAM 2 image predictor prompted at the projected keypoints; `hand_masks` joins its masks with
the keypoint masks (a pixel either calls hand is left out of the state).

The radii (`HandRadii`) are sized for an adult hand (palm about 8-9 cm wide) and cover the
synthetic tabletop hand (palm 7.6 cm wide at the wrist, fingers 1.7 cm thick, arm 4.8 cm): without
a margin the masks hold every ground-truth hand pixel at 32 px (seeds 0-5, tests/sim/test_prepare.py)
and 99.7 % of them at 64 px. They are deliberately generous: a background pixel wrongly masked is
only left out of the fused state (the observation model sees it as unobserved), while a hand pixel
fused into the static scene stays in it as a ghost.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from egoworld.sim.camera import validate_intrinsics, validate_poses, world_to_camera
from egoworld.sim.hands import HAND_EDGES, _as_hands

NEAR = 0.02  # metres: segments are clipped to z >= NEAR
FOREARM_LENGTH = 0.25  # metres from the wrist to an estimated forearm joint (an adult forearm)
KNUCKLES = (1, 5, 9, 13, 17)  # the finger bases: the forearm points from their centre through the wrist
PALM = (0, 1, 5, 9, 13, 17)  # wrist, thumb base, index/middle/ring/pinky knuckles
_SHIFT = 4  # cv2 sub-pixel bits


@dataclass(frozen=True)
class HandRadii:
    """Capsule radii in metres: finger bones, the palm outline, and the forearm."""

    finger: float = 0.013
    palm: float = 0.03
    forearm: float = 0.035


def _clip_segment(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of the camera-frame segment p–q with z >= NEAR, or None."""
    if p[2] < NEAR and q[2] < NEAR:
        return None
    if p[2] < NEAR or q[2] < NEAR:
        t = (NEAR - p[2]) / (q[2] - p[2])
        cut = p + t * (q - p)
        p, q = (cut, q) if p[2] < NEAR else (p, cut)
    return p, q


def _project(p: np.ndarray, K: np.ndarray) -> np.ndarray:
    return np.array([K[0, 0] * p[0] / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2]])


def _fixed(uv: np.ndarray) -> np.ndarray:
    """Pixel coordinates as cv2 fixed-point ints (clamped far outside the image first)."""
    return np.round(np.clip(uv, -1e5, 1e5) * (1 << _SHIFT)).astype(np.int32)


def _capsule(canvas: np.ndarray, p: np.ndarray, q: np.ndarray, radius: float, K: np.ndarray) -> None:
    """Draw the silhouette of the capsule p–q (camera frame, metres) into `canvas` (uint8, in place)."""
    seg = _clip_segment(p, q)
    if seg is None:
        return
    p, q = seg
    a, b = _project(p, K), _project(q, K)
    f = 0.5 * (K[0, 0] + K[1, 1])
    ra, rb = radius * f / p[2], radius * f / q[2]
    for c, r in ((a, ra), (b, rb)):
        cv2.circle(
            canvas, tuple(int(v) for v in _fixed(c)), int(round(r * (1 << _SHIFT))), 1, -1, cv2.LINE_8, _SHIFT
        )
    d = b - a
    n = np.linalg.norm(d)
    if n < 1e-9:
        return
    normal = np.array([-d[1], d[0]]) / n
    quad = np.stack([a + ra * normal, b + rb * normal, b - rb * normal, a - ra * normal])
    cv2.fillConvexPoly(canvas, _fixed(quad), 1, cv2.LINE_8, _SHIFT)


def _hand(canvas, kp_cam: np.ndarray, arm_cam: np.ndarray | None, K, radii: HandRadii) -> None:
    """One hand: keypoints [21, 3] and forearm joint [3] (or None) in the camera frame."""
    known = np.isfinite(kp_cam).all(-1)
    palm = [i for i in PALM if known[i]]
    outline = list(zip(PALM, PALM[1:] + PALM[:1]))
    if len(palm) == len(PALM) and (kp_cam[palm, 2] >= NEAR).all():
        uv = np.stack([_project(kp_cam[i], K) for i in palm])
        hull = cv2.convexHull(_fixed(uv))
        cv2.fillConvexPoly(canvas, hull, 1, cv2.LINE_8, _SHIFT)
    for i, j in outline:
        if known[i] and known[j]:
            _capsule(canvas, kp_cam[i], kp_cam[j], radii.palm, K)
    for i, j in HAND_EDGES:
        if known[i] and known[j]:
            r = radii.palm if i == 0 else radii.finger  # wrist → finger base runs through the palm
            _capsule(canvas, kp_cam[i], kp_cam[j], r, K)
    if arm_cam is not None and known[0] and np.isfinite(arm_cam).all():
        _capsule(canvas, arm_cam, kp_cam[0], radii.forearm, K)


def estimate_forearms(
    keypoints: np.ndarray,  # [T, 21, 3] or [T, A, 21, 3] world metres, NaN = unknown
    length: float = FOREARM_LENGTH,
) -> np.ndarray:
    """A forearm joint per hand ``[T, A, 3]``: `length` from the wrist along (wrist − centre of the
    known finger bases); NaN where the wrist or every finger base is unknown.

    The forearm continues the palm's axis when the wrist is straight; a bent wrist turns it by up to
    ~70°, which the arm capsule's radius only partly covers (the hand's own capsules still do).
    """
    hands = _as_hands(keypoints)  # [T, A, 21, 3]
    wrist = hands[:, :, 0]
    base = hands[:, :, list(KNUCKLES)]
    known = np.isfinite(base).all(-1)  # [T, A, 5]
    n = known.sum(-1)
    centre = np.where(known[..., None], base, 0.0).sum(-2) / np.maximum(n, 1)[..., None]
    axis = wrist - centre
    norm = np.linalg.norm(axis, axis=-1, keepdims=True)
    ok = (n > 0)[..., None] & np.isfinite(wrist) & (norm > 1e-6)
    return np.where(ok, wrist + length * axis / np.where(norm > 1e-6, norm, 1.0), np.nan)


def keypoint_hand_masks(
    keypoints: np.ndarray,  # [T, 21, 3] or [T, A, 21, 3] world metres, NaN = unknown
    K: np.ndarray,  # [3, 3]
    cam_to_world: np.ndarray,  # [T, 4, 4]
    height: int,
    width: int,
    *,
    forearms: np.ndarray | None = None,  # [T, A, 3] world metres, NaN = unknown
    radii: HandRadii = HandRadii(),
    dilate_px: int = 1,
    forearm_length: float | None = FOREARM_LENGTH,
) -> np.ndarray:
    """Pixels of the hands (and forearms) `[T, H, W]` bool, from their keypoints (see the module doc).

    A forearm that is not given (`forearms` None or NaN) is estimated `forearm_length` metres from
    the wrist (`estimate_forearms`); None draws no forearm for it.
    """
    hands = _as_hands(keypoints)  # [T, A, 21, 3]
    K = validate_intrinsics(K)
    poses = validate_poses(cam_to_world).reshape(-1, 4, 4)
    T, A = hands.shape[:2]
    if len(poses) != T:
        raise ValueError(f"{len(poses)} camera poses for {T} keypoint frames; expected {T}")
    if forearms is not None:
        forearms = np.asarray(forearms, dtype=np.float64).reshape(T, A, 3)
    if forearm_length is not None:
        guess = estimate_forearms(hands, forearm_length)
        forearms = guess if forearms is None else np.where(np.isfinite(forearms), forearms, guess)
    out = np.zeros((T, int(height), int(width)), bool)
    kernel = np.ones((2 * dilate_px + 1, 2 * dilate_px + 1), np.uint8) if dilate_px > 0 else None
    for t in range(T):
        canvas = np.zeros((int(height), int(width)), np.uint8)
        for a in range(A):
            kp = world_to_camera(hands[t, a], poses[t])
            arm = None if forearms is None else world_to_camera(forearms[t, a][None], poses[t])[0]
            _hand(canvas, kp, arm, K, radii)
        if kernel is not None:
            canvas = cv2.dilate(canvas, kernel)
        out[t] = canvas > 0
    return out


class Sam2HandSegmenter:
    """Hand masks from the SAM 2 image predictor, prompted with the projected hand keypoints.

    Each frame is encoded once; each hand with at least `min_points` keypoints in front of the camera
    and inside the image is one prompt (those keypoints as positive clicks), and its single-mask
    output is the hand. Needs a local SAM 2 checkpoint (nothing is downloaded); `checkpoint=None`
    builds random weights (plumbing tests only). `image_size` overrides SAM 2's 1024-px input (tests).

    Args:
        config: SAM 2 hydra config name (default `egoworld.metrics.tracking.DEFAULT_SAM2_CONFIG`).
        checkpoint: local ``.pt`` file matching the config, or None (random weights).
        device: torch device.
        image_size: input resolution override (tests only: the checkpoints were trained at 1024).
        min_points: keypoints a hand needs in the image to be prompted.
    """

    def __init__(
        self,
        config: str | None = None,
        checkpoint=None,
        device: str = "cpu",
        *,
        image_size: int | None = None,
        min_points: int = 3,
    ):
        from pathlib import Path

        from egoworld.errors import EgoworldError
        from egoworld.metrics.tracking import DEFAULT_SAM2_CONFIG

        try:
            from sam2.build_sam import build_sam2
            from sam2.sam2_image_predictor import SAM2ImagePredictor
        except ImportError as err:
            raise EgoworldError(
                "SAM 2 is not installed; install it with "
                "`SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2`"
            ) from err
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(
                f"SAM 2 checkpoint not found: {checkpoint}; expected a local .pt file (e.g. "
                "sam2.1_hiera_tiny.pt from https://github.com/facebookresearch/sam2#download-checkpoints)"
            )
        overrides = [] if image_size is None else [f"++model.image_size={int(image_size)}"]
        model = build_sam2(
            config or DEFAULT_SAM2_CONFIG,
            ckpt_path=None if checkpoint is None else str(checkpoint),
            device=device,
            hydra_overrides_extra=overrides,
        )
        self.predictor = SAM2ImagePredictor(model)
        if image_size is not None:  # the predictor assumes 1024-px input: strides 4, 8, 16 of the backbone
            s = int(image_size)
            self.predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
        self.min_points = int(min_points)

    def __call__(
        self,
        frames: np.ndarray,  # [T, H, W, 3] uint8
        keypoints: np.ndarray,  # [T, 21, 3] or [T, A, 21, 3] world metres
        K: np.ndarray,  # [3, 3]
        cam_to_world: np.ndarray,  # [T, 4, 4]
    ) -> np.ndarray:
        """Hand pixels ``[T, H, W]`` bool (False in frames where no hand could be prompted)."""
        import torch

        from egoworld.sim.camera import project

        frames = np.asarray(frames)
        T, H, W = frames.shape[:3]
        hands = _as_hands(keypoints)
        poses = validate_poses(cam_to_world).reshape(-1, 4, 4)
        K = validate_intrinsics(K)
        if len(hands) != T or len(poses) != T:
            raise ValueError(
                f"{len(hands)} keypoint frames and {len(poses)} poses for {T} frames; expected {T} of each"
            )
        out = np.zeros((T, H, W), bool)
        with torch.inference_mode():
            for t in range(T):
                prompts = []
                for a in range(hands.shape[1]):
                    uv, z = project(world_to_camera(hands[t, a], poses[t]), K)
                    ok = np.isfinite(uv).all(-1) & (z > NEAR)
                    ok &= (uv[:, 0] >= 0) & (uv[:, 0] <= W - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= H - 1)
                    if ok.sum() >= self.min_points:
                        prompts.append(uv[ok].astype(np.float32))
                if not prompts:
                    continue
                self.predictor.set_image(np.ascontiguousarray(frames[t]))
                for pts in prompts:
                    masks, _, _ = self.predictor.predict(
                        point_coords=pts, point_labels=np.ones(len(pts), np.int32), multimask_output=False
                    )
                    out[t] |= np.asarray(masks[0]) > 0
        return out


def hand_masks(
    keypoints: np.ndarray,  # [T, 21, 3] or [T, A, 21, 3] world metres
    K: np.ndarray,  # [3, 3]
    cam_to_world: np.ndarray,  # [T, 4, 4]
    height: int,
    width: int,
    *,
    frames: np.ndarray | None = None,  # [T, H, W, 3] uint8, for `segmenter`
    segmenter: Sam2HandSegmenter | None = None,
    **keypoint_kwargs,
) -> np.ndarray:
    """Hand pixels ``[T, H, W]`` bool: the keypoint masks, joined with SAM 2's when `segmenter` is given."""
    masks = keypoint_hand_masks(keypoints, K, cam_to_world, height, width, **keypoint_kwargs)
    if segmenter is not None:
        if frames is None:
            raise ValueError("a SAM 2 hand segmenter needs the frames; expected frames [T, H, W, 3]")
        masks |= segmenter(frames, keypoints, K, cam_to_world)
    return masks
