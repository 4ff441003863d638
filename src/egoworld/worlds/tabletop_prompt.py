"""A sentence saying what a synthetic tabletop episode shows: the text prompt of its exported clips.

Built only from what the episode generator knows and what happened: how many objects stand on the
table, the grasped one's shape and colour (a cylinder has one colour, `scene.SceneBuilder.color`; a
box is textured), and where the object ended up relative to where it started, in the first frame's
camera (OpenCV axes: x right, z forward), from the object's simulated poses. For example:

    "The right hand reaches for a small blue cylinder among 3 objects on a table, picks it up,
    moves it to the left and farther away and puts it down."
"""

from __future__ import annotations

import colorsys

import numpy as np

MOVED_M = 0.05  # displacements below this are "about where it was"
HUES = (  # (upper hue bound in degrees, name)
    (15, "red"),
    (40, "orange"),
    (70, "yellow"),
    (165, "green"),
    (200, "teal"),
    (255, "blue"),
    (290, "purple"),
    (345, "pink"),
    (360, "red"),
)


def colour_name(rgb) -> str:
    """A plain colour word for `rgb` in [0, 1]: greys below 25 % saturation, "dark" below 35 % value."""
    h, s, v = colorsys.rgb_to_hsv(*(float(c) for c in rgb))
    if s < 0.25:
        return "dark grey" if v < 0.35 else "light grey" if v > 0.75 else "grey"
    name = next(n for bound, n in HUES if h * 360 < bound)
    return f"dark {name}" if v < 0.35 else name


def object_phrase(obj: dict) -> str:
    """ "a small <colour> cylinder" / "a small textured box" of one movable-object record."""
    if obj.get("shape") == "cylinder" and obj.get("rgb") is not None:
        return f"a small {colour_name(obj['rgb'])} cylinder"
    return f"a small textured {obj.get('shape') or 'object'}"


def direction_phrase(shift_cam: np.ndarray) -> str:
    """How a displacement `[3]` in camera axes (x right, y down, z forward) reads to the viewer."""
    x, z = float(shift_cam[0]), float(shift_cam[2])
    parts = []
    if abs(x) >= 0.4 * max(abs(x), abs(z)):
        parts.append("to the right" if x > 0 else "to the left")
    if abs(z) >= 0.4 * max(abs(x), abs(z)):
        parts.append("farther away" if z > 0 else "closer")
    return " and ".join(parts)


def describe_episode(
    movable: list[dict],
    grasped: int,
    object_poses: np.ndarray,  # [T, M, 7] xyz + wxyz, world (z up)
    cam_to_world: np.ndarray,  # [T, 4, 4] OpenCV camera axes
    effector: str = "hand",
) -> str:
    """The episode in one sentence (see the module docstring)."""
    who = "The right hand" if effector == "hand" else "The gripper"
    what = object_phrase(movable[grasped])
    where = f"among {len(movable)} objects on a table"
    path = object_poses[:, grasped, :3]  # [T, 3]
    lifted = (path[:, 2].max() - path[0, 2]) > 0.01
    shift_cam = cam_to_world[0, :3, :3].T @ (path[-1] - path[0])
    if not lifted and np.linalg.norm(shift_cam) < 0.01:
        return f"{who} reaches for {what} {where} and pulls back."
    if np.hypot(shift_cam[0], shift_cam[2]) < MOVED_M:
        return f"{who} reaches for {what} {where}, picks it up and puts it back down about where it was."
    moved = direction_phrase(shift_cam)
    return f"{who} reaches for {what} {where}, picks it up, moves it {moved} and puts it down."
