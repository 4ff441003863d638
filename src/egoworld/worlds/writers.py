"""Writers for the on-disk formats: image folders, mp4 (PyAV), ground truth, JSON and pickles."""

from __future__ import annotations

import json
import pickle
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

FPS = 30


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def write_pickle(path: Path, obj: dict) -> None:
    """Pickle a plain dict of numpy arrays (what a restricted unpickler accepts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def write_images(folder: Path, frames_THWC: np.ndarray, suffix: str = ".jpg") -> None:
    """Frames uint8 [T,H,W,3] as `folder/{0,1,...}{suffix}` (JPEG quality 95 or PNG)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames_THWC):
        img = Image.fromarray(frame)
        if suffix == ".jpg":
            img.save(folder / f"{t}.jpg", quality=95)
        else:
            img.save(folder / f"{t}{suffix}")


def rgb_to_yuv420p(rgb_HWC: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:0 planes stacked as uint8 [H*3/2, W] (PyAV's yuv420p layout).

    Done in numpy so the bytes handed to the encoder depend only on the frame.
    """
    h, w, _ = rgb_HWC.shape
    r, g, b = (rgb_HWC[..., i].astype(np.float32) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255

    def half(c):
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = np.concatenate([np.rint(p).ravel() for p in (y, half(cb), half(cr))])
    return np.clip(planes, 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def write_mp4(path: Path, frames_THWC: np.ndarray, fps: int = FPS) -> str:
    """Frames uint8 [T,H,W,3] (even H and W) as an MPEG-4 part 2 mp4 at `fps`; returns the codec name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _, h, w, _ = frames_THWC.shape
    if h % 2 or w % 2:
        raise ValueError(f"video frames must have even height and width for mp4; got {h}x{w}")
    with av.open(str(path), mode="w") as container:
        # MPEG-4 part 2 at a fixed quantiser: byte-identical files for identical frames. (libx264 here
        # gave different bytes for the same frames from run to run.)
        stream = container.add_stream("mpeg4", rate=fps)
        stream.options = {"flags": "+qscale", "global_quality": str(2 * 118)}  # q = 2 (FF_QP2LAMBDA = 118)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = Fraction(1, fps)
        codec = stream.codec_context.name
        for frame in frames_THWC:
            yuv = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
            for packet in stream.encode(yuv):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return codec


def write_ground_truth(
    gt: Path,
    depth_THW: np.ndarray,
    instances_THW: np.ndarray,
    K: np.ndarray,
    cam_to_world_T44: np.ndarray,
    objects: dict[str, dict],
    size_hw: tuple[int, int],
) -> None:
    """`gt/depth.npy` float32 metres, `gt/instances.npy` uint16 ids, `gt/cameras.json`, `gt/objects.json`."""
    gt.mkdir(parents=True, exist_ok=True)
    np.save(gt / "depth.npy", depth_THW.astype(np.float32))
    if instances_THW.max(initial=0) >= 2**16:
        raise ValueError(f"instance ids must be < 65536 to store as uint16; got {instances_THW.max()}")
    np.save(gt / "instances.npy", instances_THW.astype(np.uint16))
    write_json(
        gt / "cameras.json",
        {
            "convention": "opencv (x right, y down, z forward); cam_to_world maps camera to world points",
            "image_size": [int(size_hw[0]), int(size_hw[1])],
            "K": np.asarray(K).tolist(),
            "cam_to_world": np.asarray(cam_to_world_T44).tolist(),
        },
    )
    write_json(gt / "objects.json", {"background": 0, "objects": objects})
