"""Fixtures: small datasets in each real layout (see data_builders.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test modules import data_builders

from data_builders import circle_poses, write_nwm_traj, write_onex  # noqa: E402


@pytest.fixture
def nwm_root(tmp_path) -> Path:
    """<tmp>/recon/{traj_a (20 frames), traj_b (12 frames)} + data_splits/recon/{train,test}."""
    root = tmp_path / "recon"
    pos, yaw = circle_poses(20)
    write_nwm_traj(root / "traj_a", pos, yaw)
    pos, yaw = circle_poses(12)
    write_nwm_traj(root / "traj_b", pos[::-1].copy(), yaw[::-1].copy())
    for split, names in (("train", ["traj_a"]), ("test", ["traj_b"])):
        p = tmp_path / "data_splits" / "recon" / split / "traj_names.txt"
        p.parent.mkdir(parents=True)
        p.write_text("\n".join(names) + "\n")
    return root


@pytest.fixture
def onex_root(tmp_path) -> Path:
    """Shard 0: 60 frames at 30 Hz, segment 0 = frames 0-35, segment 1 = frames 36-59."""
    seg = np.array([0] * 36 + [1] * 24, np.int32)
    return write_onex(tmp_path / "onex", [seg])


@pytest.fixture
def watchdog():
    """Fail (instead of hanging the suite) if the test body runs longer than 60 s.

    Not a timing assertion: the bounded-work tests finish in well under a second; a regression
    that makes them exponential would otherwise never return.
    """
    import signal

    def expired(signum, frame):
        raise TimeoutError("watchdog: the reader did not return within 60 s (unbounded work?)")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, 60)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
