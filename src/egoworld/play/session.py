"""One page's walk: start image, generated frames, the actions behind them, pending key presses.

A walk is frames [N, H, W, 3] with actions [N, D] (row 0 zero: the start image), made of chunks.
Key presses queue in `pending` (at most one chunk's worth: presses beyond it while the model is
busy are dropped and counted); `take_job` moves up to a chunk of them into a `Job` for the model,
and `finish` appends its frames unless an undo, reset or new start image (`epoch`) superseded it.
Everything here runs on the server's event loop; only `Job` data crosses to the model thread.
"""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from egoworld.play.controls import Controller


def png_data_url(frame_HW3: np.ndarray) -> str:
    """uint8 [H, W, 3] -> "data:image/png;base64,..." for the page."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(frame_HW3, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class Chunk:
    """Frames [start, start + count) of a walk, made in one model call with sampling seed `seed`."""

    start: int
    count: int
    seed: int
    model_s: float  # seconds the model took
    latency_s: float  # seconds from the chunk's first key press to its frames


@dataclass
class Job:
    """One chunk for the model: start frame uint8 [H, W, 3], raw actions [K, D] (row 0 zero)."""

    epoch: int
    start_frame: np.ndarray
    actions: np.ndarray
    labels: list[str]
    state: np.ndarray | None
    seed: int
    pressed_at: float


@dataclass
class Session:
    """The walk of one open page (tab); see the module docstring.

    Args:
        controller: how page messages become actions.
        chunk_size: new frames per model call (the model's num_frames - 1).
        max_frames: longest walk (start image included).
    """

    controller: Controller
    chunk_size: int
    max_frames: int = 2000
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    image_name: str = ""
    frames: list[np.ndarray] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)  # PNG data URLs of `frames`
    actions: list[np.ndarray] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    pending: deque = field(default_factory=deque)  # (action [D], label, time pressed)
    state: np.ndarray | None = None
    epoch: int = 0
    inflight: Job | None = None  # the chunk the model is making
    dropped: int = 0
    sockets: set = field(default_factory=set)
    detached_at: float | None = None
    task: object | None = None

    def __post_init__(self) -> None:
        self.state = self.controller.state_vector(None)

    # the walk ---------------------------------------------------------------------------------

    @property
    def has_start(self) -> bool:
        return bool(self.frames)

    @property
    def max_pending(self) -> int:
        return self.chunk_size

    @property
    def busy(self) -> bool:
        return self.inflight is not None

    def set_start(self, image_HW3: np.ndarray, name: str) -> None:
        """Start a new walk from `image_HW3` (uint8 [H, W, 3]); drops the old walk and any chunk in flight."""
        self._supersede()
        self.image_name = name
        self.frames = [np.asarray(image_HW3, dtype=np.uint8)]
        self.urls = [png_data_url(self.frames[0])]
        self.actions = [np.zeros(self.controller.action_dim, dtype=np.float32)]
        self.labels, self.chunks = [], []

    def _supersede(self) -> None:
        self.epoch += 1
        self.pending.clear()

    def press(self, action: np.ndarray, label: str, now: float | None = None) -> str | None:
        """Queue one step; returns why it was not queued ("no start image", "queue full", ...) or None."""
        if not self.has_start:
            return "pick a start image first"
        making = len(self.inflight.labels) if self._making() else 0
        if len(self.frames) + making + len(self.pending) >= self.max_frames:
            return f"the walk has reached {self.max_frames} frames; download it, undo or reset"
        if len(self.pending) >= self.max_pending:
            self.dropped += 1
            return "queue full"
        self.pending.append(
            (np.asarray(action, dtype=np.float32), label, time.perf_counter() if now is None else now)
        )
        return None

    def set_state(self, values) -> None:
        """The robot state the next chunks start from (models with a state; ValueError if malformed)."""
        if self.controller.state_dim is not None and values is not None:
            self.state = self.controller.state_vector(values)

    def take_job(self, base_seed: int) -> Job | None:
        """Up to one chunk of pending steps as a Job (None when nothing is pending)."""
        if not self.pending or not self.has_start:
            return None
        steps = [self.pending.popleft() for _ in range(min(self.chunk_size, len(self.pending)))]
        actions = np.stack([np.zeros(self.controller.action_dim, dtype=np.float32)] + [s[0] for s in steps])
        self.inflight = Job(
            epoch=self.epoch,
            start_frame=self.frames[-1],
            actions=actions,  # [K, D], row 0 zero
            labels=[s[1] for s in steps],
            state=None if self.state is None else self.state.copy(),
            seed=base_seed + len(self.chunks),
            pressed_at=steps[0][2],
        )
        return self.inflight

    def _making(self) -> bool:
        """A chunk for the current walk is being made (not one an undo/reset already superseded)."""
        return self.inflight is not None and self.inflight.epoch == self.epoch

    def abandon(self, job: Job) -> None:
        """The model failed on `job`: nothing is appended and the queued presses are dropped."""
        if self.inflight is job:
            self.inflight = None
            self.pending.clear()

    def finish(self, job: Job, frames_KHW3: np.ndarray, urls: list[str], model_s: float) -> Chunk | None:
        """Append a job's frames [K-1, H, W, 3]; None (nothing appended) if the job was superseded."""
        if self.inflight is job:
            self.inflight = None
        if job.epoch != self.epoch:
            return None
        if len(frames_KHW3) != len(job.labels):
            raise ValueError(f"the model returned {len(frames_KHW3)} frames for {len(job.labels)} actions")
        chunk = Chunk(
            len(self.frames), len(job.labels), job.seed, model_s, time.perf_counter() - job.pressed_at
        )
        self.frames.extend(np.asarray(f, dtype=np.uint8) for f in frames_KHW3)
        self.urls.extend(urls)
        self.actions.extend(job.actions[1:])
        self.labels.extend(job.labels)
        self.chunks.append(chunk)
        return chunk

    def undo(self) -> str:
        """Drop the chunk being generated (with the queued presses) if any, else the last chunk."""
        if self._making() or self.pending:
            self._supersede()
            return "dropped the chunk being generated and the queued presses"
        if not self.chunks:
            return "nothing to undo"
        self.epoch += 1
        last = self.chunks.pop()
        del self.frames[last.start :], self.urls[last.start :]
        del self.actions[last.start :], self.labels[last.start - 1 :]
        return f"undid the last chunk ({last.count} frames)"

    def reset(self) -> None:
        """Back to the start image alone."""
        self._supersede()
        if self.has_start:
            del self.frames[1:], self.urls[1:], self.actions[1:]
            self.labels, self.chunks = [], []

    # what the page and the downloads see --------------------------------------------------------

    def actions_array(self) -> np.ndarray:
        """Raw actions float32 [N, D] of the walk, row 0 zero."""
        return np.stack(self.actions).astype(np.float32)

    def frames_array(self) -> np.ndarray:
        """uint8 [N, H, W, 3]."""
        return np.stack(self.frames)

    def path(self) -> list[list[float]] | None:
        """Commanded poses (x m, y m, yaw rad): the walk, the chunk being made, the queued presses."""
        if not self.has_start:
            return None
        making = list(self.inflight.actions[1:]) if self._making() else []
        rows = self.actions + making + [p[0] for p in self.pending]
        poses = self.controller.path(np.stack(rows))
        return None if poses is None else np.round(poses, 4).tolist()

    def status(self) -> dict:
        last = self.chunks[-1] if self.chunks else None
        return {
            "type": "status",
            "busy": self.busy,
            "pending": len(self.pending),
            "max_pending": self.max_pending,
            "dropped": self.dropped,
            "length": len(self.frames),
            "chunks": len(self.chunks),
            "path": self.path(),
            "latency_s": None if last is None else round(last.latency_s, 3),
            "model_s": None if last is None else round(last.model_s, 3),
            "fps": None if last is None or last.model_s <= 0 else round(last.count / last.model_s, 2),
        }

    def walk_message(self, recent: int = 24) -> dict:
        """The whole walk for a page that (re)connects or after undo/reset/new image: last `recent` frames."""
        first = max(0, len(self.urls) - recent)
        return {
            "type": "walk",
            "image": self.image_name,
            "length": len(self.frames),
            "first": first,
            "frames": self.urls[first:],
        }

    def export_actions(self, engine_info: dict) -> dict:
        """The action file: {"actions": [N, D] raw, ...}; `egoworld rollout --actions` reads it."""
        return {
            "actions": np.round(self.actions_array().astype(np.float64), 6).tolist(),
            "script": self.controller.script(self.labels),
            "labels": ["start", *self.labels],
            "chunks": [{"start": c.start, "frames": c.count, "seed": c.seed} for c in self.chunks],
            "state": None if self.state is None else self.state.tolist(),
            "image": self.image_name,
            "model": engine_info,
            "note": "actions are raw (the model normalises them); row 0 belongs to the start image. "
            "The page rolled out chunk by chunk from the last frame with seed = base seed + chunk index.",
        }
