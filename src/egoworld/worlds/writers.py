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


def save_image(path: Path, frame_HWC: np.ndarray) -> None:
    """One uint8 [H,W,3] frame as JPEG (quality 95, by a .jpg suffix) or a lossless format (PNG)."""
    img = Image.fromarray(frame_HWC)
    if path.suffix == ".jpg":
        img.save(path, quality=95)
    else:
        img.save(path)


def write_images(folder: Path, frames_THWC: np.ndarray, suffix: str = ".jpg") -> None:
    """Frames uint8 [T,H,W,3] as `folder/{0,1,...}{suffix}` (JPEG quality 95 or PNG)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames_THWC):
        save_image(folder / f"{t}{suffix}", frame)


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


class Mp4Writer:
    """Streams uint8 [H,W,3] frames (even H and W) into an MPEG-4 part 2 mp4 at `fps`, one at a time.

    Kept here rather than `egoworld.data.video.write_video` for two reasons: `write_video` takes the
    whole [T,H,W,3] video at once (a 1X shard or a long passive walk would have to sit in memory),
    and it cannot pass encoder options, so MPEG-4 part 2 there runs at the default bitrate instead
    of this fixed quantiser (q = 2). Output is byte-identical for identical frames (the colour
    conversion is done in numpy, `rgb_to_yuv420p`).
    """

    def __init__(self, path: Path, width: int, height: int, fps: int = FPS):
        if height % 2 or width % 2:
            raise ValueError(f"video frames must have even height and width for mp4; got {height}x{width}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (height, width)
        self.frames = 0
        self._container = av.open(str(path), mode="w")
        # MPEG-4 part 2 at a fixed quantiser: byte-identical files for identical frames.
        stream = self._container.add_stream("mpeg4", rate=fps)
        stream.options = {"flags": "+qscale", "global_quality": str(2 * 118)}  # q = 2 (FF_QP2LAMBDA = 118)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        self._stream = stream
        self.codec = stream.codec_context.name

    def write(self, frame_HWC: np.ndarray) -> None:
        if frame_HWC.shape != (*self.size, 3) or frame_HWC.dtype != np.uint8:
            raise ValueError(
                f"video frame is {frame_HWC.dtype} {list(frame_HWC.shape)}; expected uint8 {[*self.size, 3]}"
            )
        yuv = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame_HWC), format="yuv420p")
        for packet in self._stream.encode(yuv):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_mp4(path: Path, frames_THWC: np.ndarray, fps: int = FPS) -> str:
    """Frames uint8 [T,H,W,3] (even H and W) as an MPEG-4 part 2 mp4 at `fps`; returns the codec name."""
    _, h, w, _ = frames_THWC.shape
    with Mp4Writer(path, w, h, fps) as video:
        for frame in frames_THWC:
            video.write(frame)
    return video.codec


class NpyStream:
    """Writes a .npy file of `shape` = [T, ...] one row at a time: the header first, then each row
    appended, so neither the array nor a memory map of it is held (the bytes equal `np.save`'s)."""

    def __init__(self, path: Path, dtype, shape: tuple[int, ...]):
        self.path, self.dtype, self.shape = path, np.dtype(dtype), tuple(int(n) for n in shape)
        self.rows = 0
        self._file = open(path, "wb")  # closed in close()
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": self.shape,
        }
        np.lib.format.write_array_header_1_0(self._file, header)

    def write(self, row) -> None:
        row = np.ascontiguousarray(row, dtype=self.dtype)
        if row.shape != self.shape[1:]:
            raise ValueError(
                f"{self.path.name}: row of shape {list(row.shape)}; expected {list(self.shape[1:])}"
            )
        if self.rows >= self.shape[0]:
            raise ValueError(f"{self.path.name} already has its {self.shape[0]} rows")
        self._file.write(row.tobytes())
        self.rows += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class GroundTruthWriter:
    """Streams one episode's ground truth into `gt/`, a frame at a time (memory: one frame).

    Files: `depth.npy` float32 [T,H,W] metres, `instances.npy` uint16 [T,H,W] ids, optionally
    `rgb.npy` uint8 [T,H,W,3] (a lossless copy of the frames), appended frame by frame (`NpyStream`);
    `cameras.json` (K, cam_to_world [T][4][4]) and `objects.json`
    ({"background": 0, "objects": {"<id>": {"name", "kind"}}}) when closed after all T frames.
    """

    def __init__(
        self,
        gt: Path,
        frames: int,
        size_hw: tuple[int, int],
        K: np.ndarray,
        objects: dict[str, dict],
        *,
        rgb: bool = False,
    ):
        gt.mkdir(parents=True, exist_ok=True)
        h, w = int(size_hw[0]), int(size_hw[1])
        self.gt, self.frames, self.size_hw = gt, int(frames), (h, w)
        self.K, self.objects = np.asarray(K, dtype=np.float64), objects
        self.depth = NpyStream(gt / "depth.npy", np.float32, (frames, h, w))
        self.instances = NpyStream(gt / "instances.npy", np.uint16, (frames, h, w))
        self.rgb = NpyStream(gt / "rgb.npy", np.uint8, (frames, h, w, 3)) if rgb else None
        self.cam_to_world = np.zeros((frames, 4, 4))
        self.t = 0

    def add(self, depth_HW, instances_HW, cam_to_world_44, rgb_HWC=None) -> None:
        if self.t >= self.frames:
            raise ValueError(f"ground truth for {self.gt} already has its {self.frames} frames")
        if instances_HW.max(initial=0) >= 2**16:
            raise ValueError(f"instance ids must be < 65536 to store as uint16; got {instances_HW.max()}")
        self.depth.write(depth_HW)
        self.instances.write(instances_HW)
        if self.rgb is not None:
            self.rgb.write(rgb_HWC)
        self.cam_to_world[self.t] = cam_to_world_44
        self.t += 1

    def _release(self) -> None:
        for name in ("depth", "instances", "rgb"):
            stream = getattr(self, name)
            if stream is not None:
                stream.close()
                setattr(self, name, None)

    def close(self) -> None:
        if self.depth is None:
            return
        self._release()
        if self.t != self.frames:
            raise ValueError(f"ground truth for {self.gt} got {self.t} frames; expected {self.frames}")
        write_json(
            self.gt / "cameras.json",
            {
                "convention": "opencv (x right, y down, z forward); cam_to_world maps camera to world points",
                "image_size": list(self.size_hw),
                "K": self.K.tolist(),
                "cam_to_world": self.cam_to_world.tolist(),
            },
        )
        write_json(self.gt / "objects.json", {"background": 0, "objects": self.objects})

    def __enter__(self) -> GroundTruthWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:  # the whole output folder is discarded by the caller's atomic_dir
            self._release()
