"""MJCF of a wheeled humanoid (EVE-like) whose joints follow the 1X 25-D state layout.

State index -> joint: 0 hip_yaw, 1 hip_roll, 2 hip_pitch, 3 knee_pitch, 4 ankle_roll, 5 ankle_pitch;
6-12 left shoulder pitch/roll/yaw, elbow pitch/yaw, wrist pitch/roll; 13-19 the same on the right;
20 neck_pitch; 21/22 left/right hand closure (0 open, 1 closed); 23 signed forward base velocity
(m/s along the heading, negative when reversing) and 24 yaw rate (rad/s). The base is a mocap body
(x forward, z up); the head carries camera 'ego'.
"""

from __future__ import annotations

ARM = (
    "shoulder_pitch",
    "shoulder_roll",
    "shoulder_yaw",
    "elbow_pitch",
    "elbow_yaw",
    "wrist_pitch",
    "wrist_roll",
)
STATE_JOINTS = (
    ["hip_yaw", "hip_roll", "hip_pitch", "knee_pitch", "ankle_roll", "ankle_pitch"]
    + [f"left_{j}" for j in ARM]
    + [f"right_{j}" for j in ARM]
    + ["neck_pitch"]
)  # state indices 0..20
STATE_NAMES = STATE_JOINTS + [
    "left_hand_closure",
    "right_hand_closure",
    "linear_velocity",
    "angular_velocity",
]
STATE_DIM = 25
BODY = "0.82 0.82 0.85 1"
DARK = "0.25 0.27 0.3 1"


def _hinge(name: str, axis: str, lo: float = -3.0, hi: float = 3.0) -> str:
    return f'<joint name="{name}" type="hinge" axis="{axis}" range="{lo} {hi}"/>'


def _arm(side: str, sign: int, hand_body: str) -> str:
    """Arm hanging down from the shoulder; the hand's fingers close with hinge joints."""
    y = 0.2 * sign
    finger = (
        '<body name="{s}_f{k}" pos="0.0 {fy:.3f} -0.08">'
        '<joint name="{s}_finger{k}" type="hinge" axis="1 0 0" '
        'range="-1.6 1.6"/><geom type="capsule" fromto="0 0 0 0 0 -0.07" size="0.012" rgba="'
        + DARK
        + '"/></body>'
    )
    fingers = "".join(finger.format(s=side, k=k, fy=fy) for k, fy in enumerate((0.03, -0.03)))
    return (
        f'<body name="{side}_upper" pos="0 {y:.3f} 0.46">'
        + _hinge(f"{side}_shoulder_pitch", "0 1 0")
        + _hinge(f"{side}_shoulder_roll", "1 0 0")
        + _hinge(f"{side}_shoulder_yaw", "0 0 1")
        + f'<geom type="sphere" size="0.06" rgba="{DARK}"/>'
        f'<geom type="capsule" fromto="0 0 0 0 0 -0.27" size="0.045" rgba="{BODY}"/>'
        f'<body name="{side}_lower" pos="0 0 -0.28">'
        + _hinge(f"{side}_elbow_pitch", "0 1 0")
        + _hinge(f"{side}_elbow_yaw", "0 0 1")
        + f'<geom type="capsule" fromto="0 0 0 0 0 -0.24" size="0.038" rgba="{BODY}"/>'
        f'<body name="{hand_body}" pos="0 0 -0.25">'
        + _hinge(f"{side}_wrist_pitch", "0 1 0")
        + _hinge(f"{side}_wrist_roll", "0 0 1")
        + f'<geom type="box" size="0.035 0.045 0.045" pos="0 0 -0.04" rgba="{DARK}"/>'
        f'<site name="{side}_grip" pos="0 0 -0.12" size="0.01"/>'
        f"{fingers}</body></body></body>"
    )


def humanoid_xml(robot_body: str, left_hand_body: str, right_hand_body: str, fovy: float = 75.0) -> str:
    """The humanoid as one mocap base body named `robot_body` (hands labeled separately)."""
    return (
        f'<body name="{robot_body}" mocap="true" pos="0 0 0">'
        f'<geom type="cylinder" size="0.22 0.08" pos="0 0 0.08" rgba="{DARK}"/>'
        '<body name="shin" pos="0 0 0.16">'
        + _hinge("ankle_roll", "1 0 0")
        + _hinge("ankle_pitch", "0 1 0")
        + f'<geom type="capsule" fromto="0 0 0 0 0 0.36" size="0.07" rgba="{BODY}"/>'
        '<body name="thigh" pos="0 0 0.37">'
        + _hinge("knee_pitch", "0 1 0")
        + f'<geom type="capsule" fromto="0 0 0 0 0 0.36" size="0.08" rgba="{BODY}"/>'
        '<body name="torso" pos="0 0 0.37">'
        + _hinge("hip_yaw", "0 0 1")
        + _hinge("hip_roll", "1 0 0")
        + _hinge("hip_pitch", "0 1 0")
        + f'<geom type="box" size="0.11 0.17 0.25" pos="0 0 0.27" rgba="{BODY}"/>'
        '<body name="head" pos="0 0 0.56">'
        + _hinge("neck_pitch", "0 1 0")
        + f'<geom type="sphere" size="0.1" pos="0 0 0.12" rgba="{DARK}"/>'
        # camera in front of the face, looking along +x and pitched 0.5 rad down
        f'<camera name="ego" pos="0.11 0 0.13" xyaxes="0 -1 0 0.479426 0 0.877583" fovy="{fovy}"/>'
        "</body>"
        + _arm("left", 1, left_hand_body)
        + _arm("right", -1, right_hand_body)
        + "</body></body></body></body>"
    )
