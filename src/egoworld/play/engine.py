"""The one world model every page shares, run chunk by chunk on a single worker thread.

    engine = load_engine(model_dir, steps=4)        # EgoworldError for a folder that is not a world model
    frames = engine.generate(start_HW3, actions_KD, state, seed)   # uint8 [K-1, H, W, 3], worker thread

`generate` runs `WorldModel.rollout` from the last frame of the walk under the chunk's actions
(row 0 zero: the start frame) and returns the new frames. The server submits it to
`engine.executor`, a one-thread pool: chunks from all sessions queue there one after another,
so the event loop never waits on the model.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from egoworld.errors import EgoworldError
from egoworld.play.controls import Controller, controller_for

logger = logging.getLogger(__name__)


class PlayEngine:
    """A loaded `WorldModel` with its page controller and sampling settings.

    Args:
        model: the world model (on its device, in eval mode).
        name: how the page names the model (e.g. the folder name).
        steps: sampler steps per chunk (None: the model's default).
        seed: base sampling seed; chunk k of a walk uses seed + k, so redoing an undone chunk
            with the same presses gives the same frames.
    """

    def __init__(self, model, name: str, *, steps: int | None = None, seed: int = 0):
        if steps is not None and steps < 1:
            raise ValueError(f"steps={steps}; expected at least 1 sampler step")
        self.model = model
        self.name = name
        c = model.config
        self.steps = int(steps or c.num_inference_steps)
        self.seed = int(seed)
        self.height, self.width = int(c.height), int(c.width)
        self.chunk_size = int(c.num_frames) - 1  # new frames per chunk
        self.fps = float(c.fps)
        self.controller: Controller = controller_for(model)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="egoworld-play-model")
        self._lock = threading.Lock()  # one rollout at a time, even if called outside the executor

    def describe(self) -> dict:
        c = self.model.config
        return {
            "name": self.name,
            "family": c.family,
            "height": self.height,
            "width": self.width,
            "chunk": self.chunk_size,
            "steps": self.steps,
            "fps": self.fps,
            "action_dim": int(c.action_dim),
            "state_dim": c.state_dim,
        }

    def generate(
        self, start_HW3: np.ndarray, actions_KD: np.ndarray, state: np.ndarray | None, seed: int
    ) -> np.ndarray:
        """New frames uint8 [K-1, H, W, 3] after `start_HW3` under raw actions [K, D] (row 0 zero)."""
        with self._lock:
            frames = self.model.rollout(
                start_HW3, actions_KD, state=state, num_inference_steps=self.steps, seed=seed
            )  # [K, H, W, 3]
        return frames[1:]

    def warmup(self) -> float:
        """One throw-away chunk so that the first press is not slowed by lazy initialisation; seconds."""
        t0 = time.perf_counter()
        start = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        actions = np.zeros((2, self.model.config.action_dim), dtype=np.float32)
        self.generate(start, actions, self.controller.state_vector(None), self.seed)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def load_world_model(directory: str | Path, device: str = "cpu"):
    """`WorldModel.from_pretrained(directory)` on `device`; a clear EgoworldError for anything else.

    Raises FileNotFoundError when the folder is missing and EgoworldError when it is not a
    (complete, readable) world-model folder.
    """
    from egoworld.world_model import CONFIG_NAME, WorldModel

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"--model {directory}: folder not found; expected a world-model folder")
    if not (directory / CONFIG_NAME).is_file():
        raise EgoworldError(
            f"--model {directory} is not a world model: it has no {CONFIG_NAME} "
            "(expected a folder written by WorldModel.save_pretrained or `egoworld train`)"
        )
    try:
        import diffusers
        import transformers

        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()
        model = WorldModel.from_pretrained(directory)
    except (OSError, json.JSONDecodeError, TypeError, KeyError, ValueError, RuntimeError) as err:
        detail = " ".join(str(err).split())[:300]
        raise EgoworldError(
            f"--model {directory}: incomplete or unreadable world-model folder "
            f"({type(err).__name__}: {detail})"
        ) from err
    try:
        return model.to(device)
    except (RuntimeError, AssertionError) as err:
        raise EgoworldError(f"--device {device}: cannot move the model there ({err})") from err


def load_engine(
    directory: str | Path | None = None,
    *,
    device: str = "cpu",
    steps: int | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> PlayEngine:
    """A `PlayEngine` for the world model in `directory` (default: the shipped demo-nav model).

    `threads` sets torch's CPU threads for the process (None: torch's default).
    """
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads {threads}; expected at least 1")
        import torch

        torch.set_num_threads(threads)
    if directory is None:
        from egoworld.demo import SHIPPED_MODEL

        if not SHIPPED_MODEL.is_dir():
            raise FileNotFoundError(f"no --model given and the shipped model {SHIPPED_MODEL} is missing")
        directory = SHIPPED_MODEL
    if steps is not None and steps < 1:
        raise ValueError(f"--steps {steps}; expected at least 1")
    model = load_world_model(directory, device)
    return PlayEngine(model, Path(directory).resolve().name, steps=steps, seed=seed)
