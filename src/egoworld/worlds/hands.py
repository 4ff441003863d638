"""Kinematic hand and parallel-gripper models (MJCF) with keypoint sites.

Hand keypoints follow the OpenPose/MANO order: 0 wrist; thumb 1-4 (CMC, MCP, IP, tip); index 5-8,
middle 9-12, ring 13-16, pinky 17-20 (MCP, PIP, DIP, tip). The gripper skeleton is
0 wrist (gripper base), 1 thumb-side finger tip, 2 index-side finger tip.
Frame of the effector body: x along the fingers, y to the thumb side, z out of the back of the hand
(z = x × y). `convention(effector)` states all of it as data; the tabletop task exports it.
"""

from __future__ import annotations

HAND_KEYPOINTS = 21
GRIPPER_KEYPOINTS = 3
EFFECTORS = ("hand", "gripper")
SKIN = "0.85 0.66 0.55 1"

# finger: (base position in the palm, phalanx lengths, yaw of the finger in the palm)
_FINGERS = {
    "thumb": ((0.015, 0.032, -0.006), (0.035, 0.03, 0.026), 0.9),
    "index": ((0.09, 0.026, 0.0), (0.042, 0.026, 0.02), 0.05),
    "middle": ((0.093, 0.009, 0.0), (0.046, 0.029, 0.022), 0.0),
    "ring": ((0.09, -0.009, 0.0), (0.043, 0.027, 0.02), -0.04),
    "pinky": ((0.083, -0.026, 0.0), (0.034, 0.021, 0.018), -0.1),
}
_CURL = (1.1, 1.0, 0.8)  # radians per unit closure, proximal to distal

# parallel gripper, in the effector frame (metres)
GRIPPER_FINGER_BASE = 0.06  # x of the finger bodies (the slides) from the wrist
GRIPPER_TIP = 0.055  # x of the tip keypoint from the finger base: tips at x = 0.115
GRIPPER_HALF_SPREAD = 0.05  # |y| of each finger when open
GRIPPER_TRAVEL = 0.032  # inward slide of each finger at closure 1
GRIPPER_TIP_DISTANCE = GRIPPER_FINGER_BASE + GRIPPER_TIP

# the sim side's gripper frame (egoworld.sim.hands: z along the fingers, y from the thumb-side to the
# index-side jaw) expressed in this effector frame: R_sim = R_effector @ TO_SIM_GRIPPER_FRAME
TO_SIM_GRIPPER_FRAME = ((0, 0, 1), (0, -1, 0), (1, 0, 0))


def _finger_xml(name: str, base, lengths, yaw: float) -> str:
    xml, close = "", ""
    for k, length in enumerate(lengths):
        pos = base if k == 0 else (lengths[k - 1], 0, 0)
        euler = f"0 0.15 {yaw:.4f}" if k == 0 else "0 0 0"
        xml += (
            f'<body name="{name}{k}" pos="{pos[0]:.4f} {pos[1]:.4f} {pos[2]:.4f}" euler="{euler}">'
            f'<joint name="{name}_j{k}" type="hinge" axis="0 1 0" range="-0.2 2"/>'
            f'<site name="kp_{name}{k}" size="0.004"/>'
            f'<geom type="capsule" fromto="0 0 0 {length:.4f} 0 0" size="0.0085" rgba="{SKIN}"/>'
        )
        close += "</body>"
    tip = f'<site name="kp_{name}3" pos="{lengths[-1]:.4f} 0 0" size="0.004"/>'
    return xml + tip + close


def hand_xml(body_name: str) -> str:
    """A mocap hand body named `body_name` with 5 three-phalanx fingers and 21 keypoint sites."""
    fingers = "".join(_finger_xml(n, *spec) for n, spec in _FINGERS.items())
    return (
        f'<body name="{body_name}" mocap="true" pos="0 0 1">'
        '<site name="kp_wrist" size="0.004"/>'
        f'<geom type="box" size="0.048 0.038 0.013" pos="0.045 0 0" rgba="{SKIN}"/>'
        f'<geom type="capsule" fromto="-0.08 0 0 0 0 0" size="0.024" rgba="0.3 0.35 0.5 1"/>'
        f"{fingers}</body>"
    )


def gripper_xml(body_name: str) -> str:
    """A mocap parallel gripper: base, two slide fingers (closing along y) and 3 keypoint sites."""
    finger = (
        f'<body name="grip_{{s}}" pos="{GRIPPER_FINGER_BASE} {{y}} 0">'
        '<joint name="grip_{s}_j" type="slide" axis="0 {a} 0" range="0 0.05"/>'
        '<geom type="box" size="0.035 0.011 0.014" pos="0.03 0 0" rgba="0.2 0.2 0.22 1"/>'
        f'<site name="kp_grip_{{s}}" pos="{GRIPPER_TIP} 0 0" size="0.004"/></body>'
    )
    return (
        f'<body name="{body_name}" mocap="true" pos="0 0 1">'
        '<site name="kp_wrist" size="0.004"/>'
        '<geom type="box" size="0.03 0.055 0.018" pos="0.03 0 0" rgba="0.6 0.6 0.65 1"/>'
        '<geom type="cylinder" fromto="-0.1 0 0 0 0 0" size="0.02" rgba="0.4 0.4 0.45 1"/>'
        + finger.format(s="thumb", y=GRIPPER_HALF_SPREAD, a="-1")
        + finger.format(s="index", y=-GRIPPER_HALF_SPREAD, a="1")
        + "</body>"
    )


def keypoint_sites(effector: str) -> list[str]:
    """Site names in skeleton order for 'hand' (21) or 'gripper' (3)."""
    if effector == "hand":
        return ["kp_wrist"] + [f"kp_{f}{k}" for f in _FINGERS for k in range(4)]
    if effector == "gripper":
        return ["kp_wrist", "kp_grip_thumb", "kp_grip_index"]
    raise ValueError(f"unknown effector {effector!r}; expected one of {EFFECTORS}")


def closure_qpos(effector: str, closure: float) -> dict[str, float]:
    """Joint angles (hand) or slides (gripper) for a closure in [0, 1] (0 open, 1 closed)."""
    if effector == "hand":
        out = {}
        for name in _FINGERS:
            for k, curl in enumerate(_CURL):
                out[f"{name}_j{k}"] = closure * (0.6 * curl if name == "thumb" else curl)
        return out
    return {"grip_thumb_j": GRIPPER_TRAVEL * closure, "grip_index_j": GRIPPER_TRAVEL * closure}


def gripper_opening(closure):
    """Distance (m) between the two tip keypoints for a closure in [0, 1]: 0.1 open, 0.036 closed."""
    return 2 * (GRIPPER_HALF_SPREAD - GRIPPER_TRAVEL * closure)


def convention(effector: str) -> dict:
    """The effector's keypoint and frame convention as JSON-ready data (exported with every episode)."""
    frame = {
        "origin": "wrist, keypoint 0",
        "x": "along the fingers",
        "y": "towards the thumb side",
        "z": "x cross y (out of the back of the hand / gripper)",
        "pose": "effector.npy[:, 0:3] = origin in world metres, [:, 3:7] = rotation of this frame, wxyz",
    }
    out = {
        "effector": effector,
        "keypoints": keypoint_sites(effector),
        "skeleton_edges": skeleton_edges(effector),
        "frame": frame,
        "closure": "effector.npy[:, 7]: 0 open, 1 closed",
    }
    if effector == "hand":
        out["handedness"] = "right"
        out["order"] = "OpenPose/MANO: 0 wrist; thumb 1-4; index 5-8; middle 9-12; ring 13-16; pinky 17-20"
        return out
    out["gripper"] = {
        "tip_keypoints_local_m": "(0.115, +(0.05 - 0.032 c), 0) thumb-side, (0.115, -(0.05 - 0.032 c), 0) "
        "index-side, for closure c",
        "tip_distance_from_wrist_m": GRIPPER_TIP_DISTANCE,
        "finger_base_m": GRIPPER_FINGER_BASE,
        "finger_length_m": GRIPPER_TIP,
        "opening_m": {"open": gripper_opening(0.0), "closed": gripper_opening(1.0)},
        "opening": "distance between keypoints 1 and 2 = 0.1 - 0.064 c metres",
        "to_sim_frame": {
            "R_sim = R_effector @": [list(r) for r in TO_SIM_GRIPPER_FRAME],
            "meaning": "egoworld.sim.hands gripper frame: z along the fingers, y thumb-side to index-side",
        },
    }
    return out


def effector_xml(effector: str, body_name: str) -> str:
    if effector == "hand":
        return hand_xml(body_name)
    if effector == "gripper":
        return gripper_xml(body_name)
    raise ValueError(f"unknown effector {effector!r}; expected one of {EFFECTORS}")


def skeleton_edges(effector: str) -> list[tuple[int, int]]:
    """Bones as keypoint index pairs (for drawing skeleton videos)."""
    if effector == "gripper":
        return [(0, 1), (0, 2)]
    edges = []
    for f in range(5):
        chain = [0] + [1 + 4 * f + k for k in range(4)]
        edges += list(zip(chain[:-1], chain[1:]))
    return edges


__all__ = [
    "convention",
    "gripper_opening",
    "HAND_KEYPOINTS",
    "GRIPPER_KEYPOINTS",
    "EFFECTORS",
    "keypoint_sites",
    "closure_qpos",
    "effector_xml",
    "skeleton_edges",
]
