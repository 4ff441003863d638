"""The actions file of `egoworld sim`: camera path and hand keypoints (or gripper) per frame, checked.

An `.npz` (never unpickled) with `camera_poses` [N, 4, 4] camera-to-world (OpenCV axes) and either
`hand_keypoints` [N, 21, 3] / [N, 2, 21, 3] (world metres, OpenPose order) or `gripper_poses`
[N, 4, 4] + `gripper_opening` [N]; optional `K` [3, 3] at the model's frame size and `observation`
[H, W, 3] uint8 (the current view). N must be at least K·(T − 1) + 1 for K clips of T frames.
"""

from __future__ import annotations

from pathlib import Path


def load_actions(path: str | Path, clips: int, frames: int, size: tuple[int, int] | None = None) -> dict:
    """Read and check an actions file for `clips` clips of `frames` frames (observation [H, W, 3] = size)."""
    import numpy as np

    from egoworld.io_utils import check_npz_sizes
    from egoworld.sim.camera import validate_intrinsics, validate_poses
    from egoworld.sim.loop import GripperAction, check_action

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"actions file {str(path)!r} does not exist; expected an .npz")
    check_npz_sizes(path, "actions file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as err:  # a damaged archive: zip, zlib, EOF or value errors
        raise ValueError(
            f"actions file {str(path)!r} is not a readable npz ({type(err).__name__}: {err})"
        ) from None
    if "camera_poses" not in data:
        raise ValueError(f"actions file {str(path)!r} has no 'camera_poses'; expected [N, 4, 4]")
    poses = validate_poses(data["camera_poses"])
    need = clips * (frames - 1) + 1
    if poses.ndim != 3 or len(poses) < need:
        raise ValueError(
            f"actions file has camera_poses of shape {list(poses.shape)}; {clips} clips of {frames} frames "
            f"need at least [{need}, 4, 4]"
        )
    if "hand_keypoints" in data:
        action = np.asarray(data["hand_keypoints"], dtype=np.float64)
    elif "gripper_poses" in data and "gripper_opening" in data:
        action = GripperAction(data["gripper_poses"], data["gripper_opening"])
    else:
        raise ValueError(
            f"actions file {str(path)!r} has neither 'hand_keypoints' [N, 21, 3] / [N, 2, 21, 3] nor "
            "'gripper_poses' [N, 4, 4] + 'gripper_opening' [N]"
        )
    if len(action) < need:
        raise ValueError(f"actions cover {len(action)} frames; {clips} clips of {frames} frames need {need}")
    action = check_action(action[:need], need)
    observation = data.get("observation")
    if observation is not None:
        want = "[H, W, 3]" if size is None else f"[{size[0]}, {size[1]}, 3]"
        if observation.dtype != np.uint8:
            raise ValueError(
                f"actions file {str(path)!r}: observation is {observation.dtype}; expected uint8 {want}"
            )
        if (
            observation.ndim != 3
            or observation.shape[2] != 3
            or (size is not None and observation.shape[:2] != tuple(size))
        ):
            raise ValueError(
                f"actions file {str(path)!r}: observation has shape {list(observation.shape)}; "
                f"expected {want} (the model's frame size)"
            )
    return {
        "poses": poses[:need],
        "action": action,
        "K": validate_intrinsics(data["K"]) if "K" in data else None,
        "observation": observation,
    }
