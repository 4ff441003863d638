"""Shared fixtures of the training tests: a small generated dataset and a fork server for fast restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


@pytest.fixture(scope="session")
def nav_data(tmp_path_factory) -> Path:
    """A small generated MuJoCo navigation dataset in the NWM layout (3 episodes of 16 frames)."""
    from egoworld.worlds.generate import WorldSpec, generate

    path = tmp_path_factory.mktemp("data") / "nav"
    generate(WorldSpec(task="nav", episodes=3, frames=16, size=32, seed=0), path, progress=False)
    return path


class TrainerServer:
    """Runs `egoworld` commands as forked children of one process that imported the trainer once
    (tests/train/trainer_server.py). Children are real processes: SIGKILL them with `kill`."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self._n = 0
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("trainer_server.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log_dir / "server.log", "w"),  # noqa: SIM115 - closed with the process
            env=ENV,
            cwd=ROOT,
            text=True,
        )
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}, (
            log_dir / "server.log"
        ).read_text()

    def _ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def start(self, argv: list[str]) -> tuple[int, Path]:
        """Start `egoworld *argv` in a child; (its pid, the file its stdout and stderr go to)."""
        self._n += 1
        log = self.log_dir / f"child-{self._n}.log"
        return self._ask(op="start", argv=argv, log=str(log))["pid"], log

    def poll(self, pid: int) -> int | None:
        return self._ask(op="poll", pid=pid)["code"]

    def wait(self, pid: int, timeout: float = 300) -> int:
        deadline = time.time() + timeout
        while (code := self.poll(pid)) is None:
            if time.time() > deadline:
                self.kill(pid)
                raise AssertionError(f"child {pid} ran past {timeout} s")
            time.sleep(0.05)
        return code

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        while self.poll(pid) is None:
            time.sleep(0.01)

    def run(self, argv: list[str], timeout: float = 300) -> tuple[int, str]:
        """Run `egoworld *argv` to the end; (exit code, its stdout + stderr)."""
        pid, log = self.start(argv)
        code = self.wait(pid, timeout)
        return code, log.read_text()

    def kill_when(self, pid: int, condition: Callable[[], bool], timeout: float = 300) -> bool:
        """SIGKILL the child as soon as `condition()` holds (polled about every millisecond); False when
        the child ended on its own first."""
        deadline = time.time() + timeout
        i = 0
        while True:
            if condition():
                self.kill(pid)
                return True
            i += 1
            if i % 50 == 0:
                if self.poll(pid) is not None:
                    return False
                assert time.time() < deadline, f"child {pid} ran past {timeout} s"
            time.sleep(0.001)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def trainer(tmp_path_factory) -> TrainerServer:
    server = TrainerServer(tmp_path_factory.mktemp("trainer-logs"))
    yield server
    server.close()


def final_weights(run_dir: Path) -> dict:
    """Every tensor of the final model's denoiser, keyed by file and name."""
    from safetensors.torch import load_file

    out = {}
    for f in sorted((run_dir / "final" / "denoiser").rglob("*.safetensors")):
        out.update({f"{f.parent.name}/{k}": v for k, v in load_file(f).items()})
    return out


def assert_same_final(a: Path, b: Path) -> None:
    """The two runs' final models are bit-identical (and so are the raw weights' checksums)."""
    import torch

    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys() and len(wa) > 10
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"
    sa, sb = (json.loads((r / "final_state.json").read_text()) for r in (a, b))
    assert sa == sb
