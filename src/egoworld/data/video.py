"""Video decoding with PyAV that seeks to the frames a sample needs, and an atomic mp4 writer.

`VideoReader.read(indices)` seeks to the keyframe at or before the first wanted frame and
decodes forward only until the last one, so a sample costs at most one GOP plus its span,
never the whole file. Frame numbers are derived from presentation timestamps assuming a
constant frame rate (true for the 1X shards and LeRobot videos).
"""

from __future__ import annotations

import logging
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from egoworld.data import untrusted
from egoworld.io_utils import atomic_path

logger = logging.getLogger(__name__)


class VideoError(ValueError):
    """A video cannot be opened or lacks the requested frames."""


# Handles inherited through fork. Freeing one in the child would tear down decoder state
# (and, with threaded decoding, join threads) that belong to the parent, so they are kept.
_INHERITED: list = []


def _default_threads() -> int:
    torch = sys.modules.get("torch")
    in_worker = torch is not None and torch.utils.data.get_worker_info() is not None
    return 0 if in_worker else 1


class VideoReader:
    """Random access to frames of one video file by frame index (0-based).

    The container is opened lazily, so a reader can be created in the main process and
    used inside DataLoader workers (each worker opens its own handle).

    Args:
        threads: decoder threads; 0 lets FFmpeg choose. The default None means 0 inside a
            torch DataLoader worker and 1 elsewhere: a process that forks workers while
            decoder threads exist can deadlock, so the main process decodes single-threaded.
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        self.threads = threads
        if not self.path.is_file():
            raise FileNotFoundError(f"video not found: {self.path}")
        self._container = None
        self._stream = None
        self._pid = os.getpid()
        self.frames_decoded = 0  # running count, for tests and benchmarks

    def _open(self):
        if self._pid != os.getpid():  # forked into a worker: the parent's handle is not ours to use
            if self._container is not None:
                _INHERITED.append(self._container)
            self._container = self._stream = None
            self._pid = os.getpid()
        if self._container is None:
            import av

            try:
                self._container = av.open(str(self.path))
                self._stream = self._container.streams.video[0]
            except (av.FFmpegError, IndexError, OSError, ValueError) as err:
                self.close()
                raise VideoError(f"{self.path}: cannot open as video ({err})") from None
            ctx = self._stream.codec_context
            w, h = ctx.width, ctx.height
            if not (0 <= w <= untrusted.MAX_IMAGE_SIDE and 0 <= h <= untrusted.MAX_IMAGE_SIDE):
                self.close()
                raise VideoError(
                    f"{self.path}: video declares {w}x{h} frames; expected at most "
                    f"{untrusted.MAX_IMAGE_SIDE} pixels a side"
                )
            threads = _default_threads() if self.threads is None else self.threads
            ctx.thread_count = threads
            if threads != 1:
                ctx.thread_type = "AUTO"
        return self._container, self._stream

    @property
    def fps(self) -> float:
        _, stream = self._open()
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise VideoError(f"{self.path}: video has no frame rate")
        return float(rate)

    def __len__(self) -> int:
        """Number of frames from the stream header, else counted from packets (no decoding)."""
        import av

        container, stream = self._open()
        if stream.frames:
            size = self.path.stat().st_size  # every frame takes at least a byte of the file
            if not 0 < stream.frames <= min(untrusted.MAX_VIDEO_FRAMES, size):
                raise VideoError(
                    f"{self.path}: header declares {stream.frames} frames in a {size}-byte file; expected "
                    f"at most {min(untrusted.MAX_VIDEO_FRAMES, size)}"
                )
            return int(stream.frames)
        try:
            container.seek(0)
            n = sum(1 for p in container.demux(stream) if p.size)
            container.seek(0)
        except (av.FFmpegError, OSError, ValueError) as err:
            raise VideoError(f"{self.path}: cannot count frames ({err})") from None
        return n

    def decode_all(self) -> int:
        """Decode every frame once without keeping any (a deep check); returns how many decoded."""
        import av

        container, stream = self._open()
        n = 0
        try:
            container.seek(0)
            for frame in container.decode(stream):
                frame.to_ndarray(format="rgb24")
                n += 1
                self.frames_decoded += 1
        except (av.FFmpegError, OSError, ValueError) as err:
            raise VideoError(f"{self.path}: decoding failed at frame {n} ({err})") from None
        return n

    def _index(self, frame, start: float, fps: float) -> int:
        return int(round((float(frame.pts * frame.time_base) - start) * fps))

    def read(self, indices) -> np.ndarray:
        """Frames at `indices` (any order, repeats allowed) as uint8 [N, H, W, 3] RGB."""
        import av

        try:
            want = np.asarray(indices, dtype=np.int64).reshape(-1)
        except (OverflowError, ValueError, TypeError) as err:
            raise VideoError(f"{self.path}: frame indices {indices!r:.60} are not integers ({err})") from None
        if len(want) == 0:
            raise VideoError(f"{self.path}: no frame indices requested; expected at least one")
        if want.min() < 0:
            raise VideoError(f"{self.path}: frame indices must be >= 0, got {int(want.min())}")
        container, stream = self._open()
        fps = self.fps
        tb = stream.time_base
        start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        first, last = int(want.min()), int(want.max())
        needed = set(want.tolist())
        got: dict[int, np.ndarray] = {}
        target = int((start + first / fps) / tb)
        try:
            container.seek(max(target, 0), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                self.frames_decoded += 1
                if frame.pts is None:
                    continue
                i = self._index(frame, start, fps)
                if i in needed:
                    got[i] = frame.to_ndarray(format="rgb24")
                if i >= last:
                    break
        except (av.FFmpegError, OSError, ValueError) as err:
            raise VideoError(f"{self.path}: decoding failed near frame {first} ({err})") from None
        missing = sorted(needed - got.keys())
        if missing:
            raise VideoError(
                f"{self.path}: frames {missing[:5]} not found (the video may be shorter or corrupt)"
            )
        return np.stack([got[int(i)] for i in want])  # [N, H, W, 3]

    def close(self) -> None:
        if self._container is not None:
            if self._pid == os.getpid():
                self._container.close()
            else:
                _INHERITED.append(self._container)
        self._container = self._stream = None

    def __getstate__(self):
        return {
            "path": self.path,
            "threads": self.threads,
            "_container": None,
            "_stream": None,
            "_pid": os.getpid(),
            "frames_decoded": 0,
        }

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    *,
    codec: str = "libx264",
    gop: int | None = None,
    crf: int = 18,
) -> Path:
    """Write uint8 [T, H, W, 3] RGB frames to an mp4 atomically (whole file or nothing).

    Args:
        gop: keyframe interval (None: the encoder's default).
        crf: x264 quality (0 lossless luma, 18 visually lossless).
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ValueError("cannot write a video with 0 frames")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"frame height and width must be even for yuv420p, got {h}x{w}")
    path = Path(path)
    with atomic_path(path, suffix=path.suffix or ".mp4") as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": str(crf), "preset": "veryfast"}
            if gop:
                stream.codec_context.gop_size = int(gop)
            for img in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    logger.info("wrote %d frames to %s", t, path)
    return path
