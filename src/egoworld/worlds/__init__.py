"""Synthetic egocentric worlds on MuJoCo with exact ground truth.

Procedural rooms and yards (`scene`), an offscreen renderer giving RGB, metric depth, instance
masks and camera poses (`render`), three embodiments (`nav`, `humanoid`, `tabletop`), unlabeled
`passive` video, nav walks that only turn in front of any picture (`turns`: no scene, exact frames
by homography), writers for the on-disk formats (`writers`) and a parallel driver (`generate`).

`MUJOCO_GL` defaults to `egl` here, once: Python runs this file before any `egoworld.worlds.*`
module, so it is set before those import `mujoco`.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

GENERATOR_VERSION = "2"  # 2: crc32 task seeds, [T,3] nav actions, per-episode humanoid gt
TASKS = ("nav", "humanoid", "tabletop", "passive", "turns")

__all__ = ["GENERATOR_VERSION", "TASKS"]
