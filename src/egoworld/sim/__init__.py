"""EgoSim: a closed-loop egocentric simulator with a persistent 3D state.

Geometry lives here: the state (:mod:`.state`), Render Π (:mod:`.render`), hand/gripper action
videos (:mod:`.hands`), Sim(3) alignment (:mod:`.align`) and the training-free update (:mod:`.update`).
Submodules import Open3D/torch lazily enough that ``import egoworld.sim`` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SceneState": "state",
    "StateConfig": "state",
    "ObjectInstance": "state",
    "Rendering": "render",
    "render_state": "render",
    "render_turntable": "render",
    "draw_hand_skeletons": "hands",
    "draw_gripper_skeletons": "hands",
    "gripper_to_hand_keypoints": "hands",
    "project_keypoints": "hands",
    "umeyama": "align",
    "robust_umeyama": "align",
    "update_state": "update",
    "UpdateReport": "update",
    "validate_poses": "camera",
    "intrinsics": "camera",
    "intrinsics_from_fov": "camera",
    "look_at": "camera",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"egoworld.sim.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'egoworld.sim' has no attribute {name!r}")
