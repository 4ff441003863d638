"""Exact and safe resuming: kills across epoch boundaries and during writes, corrupted or planted
checkpoints, the run-folder lock, stale temporary folders, non-finite losses, bad --init-from.

The runs go through a fork server (conftest.TrainerServer): every run or restart is a fresh process
forked from one that imported the trainer, so a restart costs seconds. The data: 9 clips of which 3
are held out, batch 2 -> 3 batches an epoch; 7 steps cross two epoch boundaries (after steps 3 and 6);
checkpoints at steps 2, 4, 6, 7 (the last 3 kept); EMA on.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from egoworld.checkpoints import MANIFEST, latest_checkpoint, verify_checkpoint, write_manifest
from egoworld.train import lock_run_dir

from .conftest import ROOT, assert_same_final

ARGS = ["--max-steps", "7", "--checkpoint-every", "2", "--keep-checkpoints", "3", "--ema-decay", "0.9",
        "--data.stride", "5", "--data.val_fraction", "0.34"]  # fmt: skip


def _argv(run_dir: Path, data: Path, *extra: str) -> list[str]:
    return ["train", str(ROOT / "configs/tiny-wan.yaml"), "--run-dir", str(run_dir), "--data.path", str(data),
            *ARGS, *extra]  # fmt: skip


def _ckpt(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:08d}"


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_error_line(log: str) -> str:
    assert "Traceback" not in log, log
    return log.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def straight(trainer, nav_data, tmp_path_factory) -> Path:
    """The uninterrupted reference run."""
    run = tmp_path_factory.mktemp("straight") / "run"
    code, log = trainer.run(_argv(run, nav_data))
    assert code == 0, log
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-00000004", "step-00000006", "step-00000007"]  # fmt: skip
    return run


def _copy_unfinished(straight: Path, to: Path) -> Path:
    """A copy of the reference run without its final model (as if killed after the last checkpoint)."""
    shutil.copytree(straight, to)
    shutil.rmtree(to / "final")
    (to / "final_state.json").unlink()
    return to


def test_data_order_is_a_function_of_seed_and_epoch_under_accelerate():
    """Resumed at any (epoch, batch), a fresh prepared loader yields what the uninterrupted one yields next,
    across epoch boundaries (Accelerate's own pass counter restarts at 0 in a new process)."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from egoworld.train import EpochPermutationSampler, epoch_batches

    accelerator = Accelerator(cpu=True)
    data = list(range(12))

    def fresh():
        sampler = EpochPermutationSampler(len(data), seed=3)
        loader = DataLoader(data, batch_size=2, sampler=sampler, drop_last=True)
        return sampler, accelerator.prepare(loader)

    def stream(epoch: int, skip: int, epochs: int = 3) -> list[list[int]]:
        sampler, loader = fresh()
        out = []
        for e in range(epoch, epochs):
            out += [
                b.tolist() for b in epoch_batches(accelerator, loader, sampler, e, skip if e == epoch else 0)
            ]
        return out

    reference = stream(0, 0)
    per_epoch = len(data) // 2
    assert reference[:per_epoch] != reference[per_epoch : 2 * per_epoch]  # epochs differ
    for epoch in range(3):
        for skip in (0, 1, per_epoch - 1, per_epoch):
            assert stream(epoch, skip) == reference[epoch * per_epoch + skip :], (epoch, skip)


def test_kills_across_epochs_and_during_writes_resume_bit_identical(trainer, nav_data, straight, tmp_path):
    run = tmp_path / "killed"
    ckpts = run / "checkpoints"
    argv = _argv(run, nav_data)

    def writing_final() -> bool:
        return run.is_dir() and any(n.startswith(".final.tmp-") or n == "final" for n in os.listdir(run))

    kill_points = [
        # in epoch 0 (3 batches an epoch): the restart crosses into epochs 1 and 2
        ("after the step-2 checkpoint", lambda: ckpts.is_dir() and any(ckpts.glob(f"step-*/{MANIFEST}"))),
        # the restart from step 2 is killed while it writes the step-6 checkpoint (or just after)
        (
            "during the step-6 checkpoint write",
            lambda: (ckpts / ".tmp-step-00000006").exists() or _ckpt(run, 6).exists(),
        ),  # fmt: skip
        ("during the final model's write", writing_final),
    ]
    for what, condition in kill_points:
        pid, log = trainer.start(argv)
        assert trainer.kill_when(pid, condition), (
            f"the run ended before it was killed {what}: {log.read_text()}"
        )
    # what a kill during a write leaves behind, planted for certain
    (ckpts / ".tmp-step-00000008" / "model").mkdir(parents=True)
    (ckpts / ".tmp-step-00000008" / "optimizer.bin").write_bytes(b"half")
    (run / ".final.tmp-killed").mkdir()
    (run / ".final.tmp-killed" / "egoworld_world_model.json").write_text("{")

    code, log = trainer.run(argv)
    assert code == 0, log
    assert_same_final(straight, run)
    left = [p.name for p in [*run.iterdir(), *ckpts.iterdir()] if ".tmp-" in p.name or ".old-" in p.name]
    assert left == []


def test_corrupted_checkpoints_fall_back_to_the_previous_good_one(trainer, nav_data, straight, tmp_path):
    run = _copy_unfinished(straight, tmp_path / "corrupt")
    # step 7: a truncated optimizer state (the manifest catches it)
    opt = _ckpt(run, 7) / "optimizer.bin"
    opt.write_bytes(opt.read_bytes()[: opt.stat().st_size // 2])
    # step 6: a scheduler state that matches its (rewritten) manifest but does not load
    (_ckpt(run, 6) / "scheduler.bin").write_bytes(b"not a torch file")
    write_manifest(_ckpt(run, 6))

    code, log = trainer.run(_argv(run, nav_data))
    assert code == 0, log
    assert "skipping checkpoint" in log and "step-00000007" in log and "optimizer.bin" in log, log
    assert "does not load" in log and "step-00000006" in log, log
    assert_same_final(straight, run)


@pytest.mark.parametrize(
    "rel",
    ["model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl", "ema.safetensors",
     "ema.json", "trainer_state.json", "model/denoiser/base/diffusion_pytorch_model.safetensors"],
)  # fmt: skip
def test_manifest_catches_a_truncated_file(straight, tmp_path, rel):
    run = tmp_path / "run"
    shutil.copytree(straight / "checkpoints", run / "checkpoints")
    assert verify_checkpoint(_ckpt(run, 7)) is None
    target = _ckpt(run, 7) / rel
    target.write_bytes(target.read_bytes()[:-7])
    assert rel in verify_checkpoint(_ckpt(run, 7))
    assert latest_checkpoint(run) == _ckpt(run, 6)


def test_incomplete_and_planted_checkpoints_are_never_loaded(straight, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(straight / "checkpoints", run / "checkpoints")
    (_ckpt(run, 7) / MANIFEST).unlink()  # killed before the manifest: incomplete
    (_ckpt(run, 6) / "custom_checkpoint_0.pkl").write_bytes(b"x")  # a file the manifest does not list
    (run / "checkpoints" / ".tmp-step-00000008").mkdir()  # killed while writing
    assert "no manifest.json" in verify_checkpoint(_ckpt(run, 7))
    assert "custom_checkpoint_0.pkl is not in the manifest" in verify_checkpoint(_ckpt(run, 6))
    assert latest_checkpoint(run) == _ckpt(run, 4)


class _Planted:
    """Unpickling this creates the file `path`: what a planted pickle could do (run any code)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_planted_pickle_never_runs_and_ema_resume_is_exact(trainer, nav_data, straight, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    torch.save({"shadow_params": _Planted(str(marker))}, evil)
    torch.load(evil, weights_only=False)  # the planted file does run code when unpickled unsafely
    assert marker.exists()
    marker.unlink()

    run = _copy_unfinished(straight, tmp_path / "planted")
    # step 7: planted and listed in a rewritten manifest (passes verification; Accelerate must not load it)
    shutil.copy(evil, _ckpt(run, 7) / "custom_checkpoint_0.pkl")
    write_manifest(_ckpt(run, 7))
    # step 6: planted, not in the manifest
    shutil.copy(evil, _ckpt(run, 6) / "custom_checkpoint_0.pkl")
    code, log = trainer.run(_argv(run, nav_data))
    assert code == 0, log
    assert not marker.exists()
    assert "step-00000007" in log and "step-00000006" in log, log  # both skipped: resumed from step 4
    assert_same_final(straight, run)  # final = EMA weights, restored from step 4's ema.safetensors


def test_no_usable_checkpoint_is_one_line_and_writes_nothing(trainer, nav_data, straight, tmp_path):
    run = _copy_unfinished(straight, tmp_path / "none")
    for step in (4, 6, 7):
        f = _ckpt(run, step) / "random_states_0.pkl"
        f.write_bytes(f.read_bytes()[:100])
    before = _listing(run)
    code, log = trainer.run(_argv(run, nav_data))
    assert code == 2
    line = _one_error_line(log)
    assert "has checkpoints but none is usable" in line and "random_states_0.pkl" in line, line
    assert _listing(run) == before


def test_a_second_trainer_on_the_same_run_dir_exits_and_writes_nothing(trainer, nav_data, straight, tmp_path):
    for run in (_copy_unfinished(straight, tmp_path / "busy"), tmp_path / "fresh"):
        fd = lock_run_dir(run)  # the first trainer
        try:
            before = _listing(run)
            code, log = trainer.run(_argv(run, nav_data))
            assert code == 2
            assert "is in use by another trainer" in _one_error_line(log)
            assert _listing(run) == before
        finally:
            os.close(fd)


def test_a_non_finite_loss_stops_keeping_the_last_good_checkpoint(trainer, nav_data, tmp_path):
    run = tmp_path / "nan"
    code, log = trainer.run(
        _argv(run, nav_data, "--lr-base=1e30", "--lr-actions=1e30", "--checkpoint-every=1")
    )  # AdamW moves every weight by ~1e30 at step 1: the loss of step 2 overflows
    assert code == 2, log
    line = _one_error_line(log)
    assert "not finite" in line and "step-00000001" in line, line
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000001"]
    assert verify_checkpoint(_ckpt(run, 1)) is None
    assert not (run / "final").exists() and not (run / "final_state.json").exists()


def test_a_learning_rate_too_large_for_float32_is_one_line(trainer, nav_data, tmp_path):
    run = tmp_path / "huge"
    code, log = trainer.run(_argv(run, nav_data, "--lr-base=1e38"))  # Adam's first step size is 10x lr
    assert code == 2, log
    line = _one_error_line(log)
    assert "optimizer step overflowed at step 1" in line and "lr_base" in line, line
    assert not (run / "final").exists()


def test_a_corrupt_init_from_folder_is_one_line(trainer, nav_data, straight, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(straight / "final", model)
    weights = next((model / "denoiser").rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:64])
    run = tmp_path / "new" / "run"
    code, log = trainer.run(_argv(run, nav_data, f"--init-from={model}"))
    assert code == 2
    line = _one_error_line(log)
    assert f"init_from={model}: cannot load a world model" in line and "save_pretrained" in line, line
    assert not (tmp_path / "new").exists()  # the folders this run made are gone
