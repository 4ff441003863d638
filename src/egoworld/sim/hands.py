"""Action video: hand (and gripper) skeletons projected into the camera, drawn per frame.

Hands use the 21-keypoint OpenPose/MANO order: 0 wrist; thumb 1–4; index 5–8; middle 9–12;
ring 13–16; pinky 17–20 (base → tip). Bones are drawn in the standard OpenPose hand colours
(edge ``i`` of the 20 bones gets hue ``i / 20`` at full saturation and value), joints as blue dots.
3D keypoints are projected with K and the camera pose; bone width and joint radius are physical
sizes (metres) divided by depth, so nearer parts are drawn thicker (foreshortening), and bones
are painted far to near. Robots use the thumb + index chains only, with the gripper opening shown
by the fingertip gap and a bar whose brightness is the opening. A gripper is given either by its
three keypoints (wrist, thumb-side tip, index-side tip; :func:`gripper_keypoints_to_hand_keypoints`,
:func:`draw_gripper_keypoint_skeletons`), which fixes the drawn tips on the real ones, or by a pose
and an opening (:func:`gripper_to_hand_keypoints`, :func:`draw_gripper_skeletons`), whose default
geometry (tips ``GRIPPER_PALM_LENGTH + GRIPPER_FINGER_LENGTH`` = 0.115 m from the flange) is
the synthetic worlds' gripper (``egoworld.worlds.hands``).
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from egoworld.sim.camera import project, validate_intrinsics, validate_poses, world_to_camera

NUM_KEYPOINTS = 21
HAND_EDGES: tuple[tuple[int, int], ...] = tuple(
    (0 if j == 0 else 4 * f + j, 4 * f + j + 1) for f in range(5) for j in range(4)
)
HAND_BONE_COLORS: np.ndarray = np.array(
    [[round(c * 255) for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0)] for i in range(20)],
    dtype=np.uint8,
)  # [20, 3] RGB
JOINT_COLOR = (0, 0, 255)  # RGB
THUMB_INDEX = tuple(range(0, 9))  # wrist, thumb 1–4, index 5–8
GRIPPER_PALM_LENGTH = 0.04  # metres from the flange (wrist) to where the drawn fingers start
GRIPPER_FINGER_LENGTH = 0.075  # tips 0.115 m from the flange, as the synthetic worlds' gripper
GRIPPER_KEYPOINTS = 3  # wrist, thumb-side tip, index-side tip (the worlds' gripper skeleton)


def _as_effectors(keypoints: np.ndarray, n: int, what: str, one: str, two: str) -> np.ndarray:
    """Validate `[T, n, 3]` or `[T, 2, n, 3]` keypoints; return `[T, A, n, 3]` float64 (A effectors)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim == 3 and kp.shape[1:] == (n, 3):
        return kp[:, None]
    if kp.ndim == 4 and kp.shape[2:] == (n, 3) and kp.shape[1] in (1, 2):
        return kp
    raise ValueError(
        f"{what} keypoints have shape {list(kp.shape)}; "
        f"expected [T, {n}, 3] ({one}) or [T, 2, {n}, 3] ({two})"
    )


def _as_hands(keypoints: np.ndarray) -> np.ndarray:
    """Validate keypoints and return them as ``[T, A, 21, 3]`` float64 (A hands)."""
    return _as_effectors(keypoints, NUM_KEYPOINTS, "hand", "one hand", "both hands")


def project_keypoints(
    keypoints: np.ndarray,  # [..., 3] world (or camera frame when cam_to_world is None)
    K: np.ndarray,  # [3, 3]
    cam_to_world: np.ndarray | None = None,  # [4, 4]
) -> tuple[np.ndarray, np.ndarray]:
    """Perspective projection: pixels ``[..., 2]`` (OpenCV, pixel centres at integers) and depth ``[...]``.

    Points behind the camera (z <= 0) or NaN get NaN pixels (:func:`egoworld.sim.camera.project`).
    """
    K = validate_intrinsics(K)
    kp = np.asarray(keypoints, dtype=np.float64)
    shape = kp.shape[:-1]
    p = kp.reshape(-1, 3)
    if cam_to_world is not None:
        p = world_to_camera(p, validate_poses(cam_to_world))
    uv, z = project(p, K)
    return uv.reshape(*shape, 2), z.reshape(shape)


def _frame_poses(cam_to_world: np.ndarray | None, T: int) -> list[np.ndarray | None]:
    if cam_to_world is None:
        return [None] * T
    poses = validate_poses(cam_to_world)
    if poses.ndim == 2:
        return [poses] * T
    if len(poses) != T:
        raise ValueError(f"got {len(poses)} camera poses for {T} keypoint frames; expected {T}")
    return list(poses)


def _draw_frame(
    canvas: np.ndarray,  # [H, W, 3] uint8, drawn in place
    uv: np.ndarray,  # [A, J, 2]
    z: np.ndarray,  # [A, J]
    edges: list[tuple[int, int, tuple[int, int, int]]],
    fx: float,
    bone_radius: float,
    joint_radius: float,
    max_px: int,
) -> None:
    items = []  # (depth, kind, data) painted far → near
    for a in range(uv.shape[0]):
        ok = np.all(np.isfinite(uv[a]), axis=-1) & (z[a] > 0)
        for i, j, color in edges:
            if ok[i] and ok[j]:
                zm = 0.5 * (z[a, i] + z[a, j])
                items.append((zm, 0, (uv[a, i], uv[a, j], color, bone_radius * fx / zm)))
        for i in {k for e in edges for k in e[:2]}:
            if ok[i]:
                items.append((z[a, i] - 1e-6, 1, (uv[a, i], joint_radius * fx / z[a, i])))
    shift = 4  # sub-pixel precision for cv2
    s = 1 << shift
    for _, kind, d in sorted(items, key=lambda it: -it[0]):
        if kind == 0:
            p, q, color, r = d
            th = int(np.clip(round(2 * r), 1, max_px))
            cv2.line(
                canvas,
                tuple(np.round(p * s).astype(int)),
                tuple(np.round(q * s).astype(int)),
                tuple(int(c) for c in color),
                th,
                cv2.LINE_AA,
                shift,
            )
        else:
            p, r = d
            rr = int(np.clip(round(r * s), s, max_px * s))
            cv2.circle(canvas, tuple(np.round(p * s).astype(int)), rr, JOINT_COLOR, -1, cv2.LINE_AA, shift)


def draw_hand_skeletons(
    keypoints: np.ndarray,  # [T, 21, 3] or [T, 2, 21, 3]
    K: np.ndarray,  # [3, 3]
    cam_to_world: np.ndarray | None,  # [T, 4, 4], [4, 4], or None = keypoints in camera frame
    height: int,
    width: int,
    *,
    bone_radius: float = 0.005,
    joint_radius: float = 0.006,
    max_px: int = 64,
    background: np.ndarray | None = None,  # [T, H, W, 3] uint8
) -> np.ndarray:
    """Draw hand skeletons into a video ``[T, H, W, 3]`` uint8 (black background unless given).

    NaN keypoints (e.g. a hand out of view) are skipped with their bones.
    """
    hands = _as_hands(keypoints)  # [T, A, 21, 3]
    T = hands.shape[0]
    edges = [(i, j, tuple(HAND_BONE_COLORS[e])) for e, (i, j) in enumerate(HAND_EDGES)]
    return _draw_video(
        hands, K, cam_to_world, height, width, edges, bone_radius, joint_radius, max_px, background, T
    )


def _draw_video(
    hands, K, cam_to_world, height, width, edges, bone_radius, joint_radius, max_px, background, T, extra=None
):
    K = validate_intrinsics(K)
    H, W = int(height), int(width)
    if background is None:
        out = np.zeros((T, H, W, 3), np.uint8)
    else:
        background = np.asarray(background)
        if background.shape != (T, H, W, 3):
            raise ValueError(f"background has shape {list(background.shape)}; expected [{T}, {H}, {W}, 3]")
        out = background.astype(np.uint8).copy()
    for t, pose in enumerate(_frame_poses(cam_to_world, T)):
        uv, z = project_keypoints(hands[t], K, pose)
        _draw_frame(out[t], uv, z, edges, float(K[0, 0]), bone_radius, joint_radius, max_px)
        if extra is not None:
            extra(out[t], t, uv, z)
    return out


def gripper_to_hand_keypoints(
    ee_pose: np.ndarray,  # [T, 4, 4] gripper-to-world (z forward along the fingers, y across the jaws)
    opening: np.ndarray,  # [T] metres between the fingertips
    *,
    finger_length: float = GRIPPER_FINGER_LENGTH,
    palm_length: float = GRIPPER_PALM_LENGTH,
) -> np.ndarray:
    """A parallel gripper as a thumb + index skeleton in the 21-keypoint layout ``[T, 21, 3]``.

    Wrist = the flange (``ee_pose`` origin); the thumb (1–4) and index (5–8) chains run from
    ``palm_length`` to ``palm_length + finger_length`` along +z, ``opening / 2`` either side of
    the z axis (thumb at −y, index at +y); middle, ring and pinky are NaN. The defaults put the
    tips 0.115 m from the flange, where the synthetic worlds' gripper has them; for another
    gripper pass its lengths, or give its keypoints to :func:`gripper_keypoints_to_hand_keypoints`.
    """
    poses = validate_poses(ee_pose)
    if poses.ndim == 2:
        poses = poses[None]
    opening = np.asarray(opening, dtype=np.float64).reshape(-1)
    if opening.shape != (len(poses),):
        raise ValueError(f"gripper opening has shape {list(opening.shape)}; expected [{len(poses)}]")
    if np.any(opening < 0):
        raise ValueError(f"gripper opening has negative values (min {opening.min():.4f}); expected >= 0 m")
    if not (finger_length > 0 and palm_length >= 0):
        raise ValueError(
            f"finger_length={finger_length}, palm_length={palm_length}; expected > 0 and >= 0 metres"
        )
    T = len(poses)
    local = np.full((T, NUM_KEYPOINTS, 3), np.nan)
    local[:, 0] = 0.0
    steps = palm_length + finger_length * np.array([0.0, 1 / 3, 2 / 3, 1.0])
    for base, side in ((1, -1.0), (5, 1.0)):  # thumb on -y, index on +y
        for k in range(4):
            local[:, base + k, 0] = 0.0
            local[:, base + k, 1] = side * opening / 2
            local[:, base + k, 2] = steps[k]
    R, t = poses[:, :3, :3], poses[:, :3, 3]
    return np.einsum("tij,tkj->tki", R, local) + t[:, None]


def _as_grippers(keypoints: np.ndarray) -> np.ndarray:
    """Validate gripper keypoints and return them as ``[T, A, 3, 3]`` float64."""
    one = "wrist, thumb-side tip, index-side tip"
    return _as_effectors(keypoints, GRIPPER_KEYPOINTS, "gripper", one, "two grippers")


def gripper_keypoints_to_hand_keypoints(
    keypoints: np.ndarray,  # [T, 3, 3] or [T, A, 3, 3]: wrist, thumb-side tip, index-side tip
    *,
    palm_length: float = GRIPPER_PALM_LENGTH,
) -> np.ndarray:
    """A gripper's 3 keypoints as thumb + index chains of the 21-keypoint layout (``[T, (A,) 21, 3]``).

    The geometry comes from the keypoints: the fingers point from the wrist to the tips' midpoint,
    their length is ``|mid_tips − wrist| − palm_length``, and each chain ends exactly on its tip
    (thumb chain 1–4 on the thumb-side tip, index chain 5–8 on the index-side tip), so the drawn
    tips land on the gripper's jaws whatever its size. NaN keypoints give NaN chains.
    """
    kp = _as_grippers(keypoints)  # [T, A, 3, 3]
    single = np.asarray(keypoints).ndim == 3
    if not palm_length >= 0:
        raise ValueError(f"palm_length={palm_length}; expected >= 0 metres")
    wrist, thumb, index = kp[:, :, 0], kp[:, :, 1], kp[:, :, 2]
    d = (thumb + index) / 2 - wrist
    reach = np.linalg.norm(d, axis=-1)  # [T, A]
    finger = reach - palm_length
    bad = np.isfinite(finger) & ~(finger > 0)
    if bad.any():
        t, a = map(int, np.argwhere(bad)[0])
        raise ValueError(
            f"gripper {a} of frame {t}: tips' midpoint is {reach[t, a]:.4f} m from the wrist; "
            f"expected more than palm_length={palm_length} m"
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        axis = d / reach[..., None]
    out = np.full((*kp.shape[:2], NUM_KEYPOINTS, 3), np.nan)
    out[:, :, 0] = wrist
    behind = 1.0 - np.array([0.0, 1 / 3, 2 / 3, 1.0])  # share of the finger between joint k and the tip
    finger_vec = (finger[..., None] * axis)[:, :, None]  # [T, A, 1, 3]
    for base, tip in ((1, thumb), (5, index)):
        out[:, :, base : base + 4] = tip[:, :, None] - behind[:, None] * finger_vec
    return out[:, 0] if single else out


def _draw_grippers(
    hands: np.ndarray,  # [T, A, 21, 3]
    opening: np.ndarray,  # [T, A]
    K: np.ndarray,
    cam_to_world: np.ndarray | None,
    height: int,
    width: int,
    *,
    max_opening: float,
    bone_radius: float,
    joint_radius: float,
    max_px: int,
    background: np.ndarray | None,
) -> np.ndarray:
    T, A = hands.shape[:2]
    edges = [(i, j, tuple(HAND_BONE_COLORS[e])) for e, (i, j) in enumerate(HAND_EDGES[:8])]
    level = np.clip(opening / max_opening, 0.0, 1.0)
    fx = float(validate_intrinsics(K)[0, 0])

    def bar(canvas, t, uv, z):
        for a in range(A):
            p, q = uv[a, 4], uv[a, 8]
            if np.all(np.isfinite(p)) and np.all(np.isfinite(q)):
                g = int(round(255 * level[t, a]))
                th = int(np.clip(round(bone_radius * fx / np.nanmean(z[a, [4, 8]])), 1, max_px))
                cv2.line(
                    canvas,
                    tuple(np.round(p).astype(int)),
                    tuple(np.round(q).astype(int)),
                    (g, g, g),
                    th,
                    cv2.LINE_AA,
                )

    return _draw_video(
        hands,
        K,
        cam_to_world,
        height,
        width,
        edges,
        bone_radius,
        joint_radius,
        max_px,
        background,
        T,
        extra=bar,
    )


def draw_gripper_skeletons(
    ee_pose: np.ndarray,  # [T, 4, 4] or [T, A, 4, 4]
    opening: np.ndarray,  # [T] or [T, A] metres
    K: np.ndarray,  # [3, 3]
    cam_to_world: np.ndarray | None,  # [T, 4, 4], [4, 4] or None
    height: int,
    width: int,
    *,
    max_opening: float = 0.08,
    finger_length: float = GRIPPER_FINGER_LENGTH,
    palm_length: float = GRIPPER_PALM_LENGTH,
    bone_radius: float = 0.005,
    joint_radius: float = 0.006,
    max_px: int = 64,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Thumb + index skeletons of one or two grippers ``[T, H, W, 3]`` uint8, with an opening bar.

    The gripper is a pose (z along the fingers, y across the jaws) and an opening, drawn with the
    given finger/palm lengths (default: the synthetic worlds' gripper). The bar joins the two
    fingertips; its grey level is ``opening / max_opening`` (white = fully open). To draw a
    gripper from its keypoints, with the tips on them, use :func:`draw_gripper_keypoint_skeletons`.
    """
    ee = np.asarray(ee_pose, dtype=np.float64)
    op = np.asarray(opening, dtype=np.float64)
    if ee.ndim == 3:
        ee, op = ee[:, None], op.reshape(-1, 1)
    if ee.ndim != 4 or ee.shape[2:] != (4, 4) or op.shape != ee.shape[:2]:
        raise ValueError(
            f"gripper poses {list(ee.shape)} / opening {list(op.shape)}; expected [T, 4, 4] / [T] "
            f"or [T, A, 4, 4] / [T, A]"
        )
    hands = np.stack(
        [
            gripper_to_hand_keypoints(
                ee[:, a], op[:, a], finger_length=finger_length, palm_length=palm_length
            )
            for a in range(ee.shape[1])
        ],
        1,
    )  # [T, A, 21, 3]
    return _draw_grippers(
        hands,
        op,
        K,
        cam_to_world,
        height,
        width,
        max_opening=max_opening,
        bone_radius=bone_radius,
        joint_radius=joint_radius,
        max_px=max_px,
        background=background,
    )


def draw_gripper_keypoint_skeletons(
    keypoints: np.ndarray,  # [T, 3, 3] or [T, A, 3, 3]: wrist, thumb-side tip, index-side tip (world)
    K: np.ndarray,  # [3, 3]
    cam_to_world: np.ndarray | None,  # [T, 4, 4], [4, 4] or None
    height: int,
    width: int,
    *,
    max_opening: float = 0.08,
    palm_length: float = GRIPPER_PALM_LENGTH,
    bone_radius: float = 0.005,
    joint_radius: float = 0.006,
    max_px: int = 64,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Gripper skeletons ``[T, H, W, 3]`` uint8 drawn from the grippers' own keypoints.

    The keypoints are the ones the synthetic worlds export for a gripper (``keypoints_3d.npy``
    ``[T, 3, 3]``); the chains come from :func:`gripper_keypoints_to_hand_keypoints` (tips on the
    given tips), the opening is the tip distance, drawn as in :func:`draw_gripper_skeletons`.
    """
    kp = _as_grippers(keypoints)
    hands = gripper_keypoints_to_hand_keypoints(kp, palm_length=palm_length)  # [T, A, 21, 3]
    opening = np.linalg.norm(kp[:, :, 1] - kp[:, :, 2], axis=-1)  # [T, A]
    return _draw_grippers(
        hands,
        opening,
        K,
        cam_to_world,
        height,
        width,
        max_opening=max_opening,
        bone_radius=bone_radius,
        joint_radius=joint_radius,
        max_px=max_px,
        background=background,
    )
