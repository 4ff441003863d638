"""The trainer: objectives overfit, LR groups, atomic checkpoints, exact resume after SIGKILL, DDP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from egoworld.actions.normalization import ActionNormalizer
from egoworld.checkpoints import MANIFEST, latest_checkpoint, write_manifest
from egoworld.train import param_groups
from egoworld.train_config import load_config
from egoworld.world_model import WorldModel, WorldModelConfig

from .conftest import ENV, ROOT

EGOWORLD = [sys.executable, "-m", "egoworld"]


def _train_cmd(run_dir: Path, data: Path, *extra: str) -> list[str]:
    return [*EGOWORLD, "train", str(ROOT / "configs/tiny-wan.yaml"), "--run-dir", str(run_dir),
            "--data.path", str(data), *extra]  # fmt: skip


@pytest.mark.parametrize("family,frames", [("svd", 4), ("cosmos", 5), ("wan", 5)])
def test_loss_falls_on_a_tiny_overfit_task(family, frames):
    torch.manual_seed(0)
    cfg = WorldModelConfig(family=family, num_frames=frames, height=32, width=32, hidden_dim=32)
    model = WorldModel.build(cfg).train()
    batch = dict(frames=torch.rand(2, frames, 3, 32, 32) * 2 - 1, actions=torch.randn(2, frames, 3))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for _ in range(25):
        loss = model(batch, generator=torch.Generator().manual_seed(0))  # the same noise every step
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_two_learning_rate_groups():
    cfg = load_config(ROOT / "configs/tiny-svd.yaml", ["--lr-base=1e-5", "--lr-actions=1e-4"])
    model = WorldModel.build(cfg.model)
    groups = param_groups(cfg, model)
    by_name = {g["name"]: g for g in groups}
    assert by_name["base"]["lr"] == 1e-5 and by_name["actions"]["lr"] == 1e-4
    assert {id(p) for p in by_name["actions"]["params"]} == {
        id(p) for p in model.denoiser.action_parameters()
    }
    frozen = load_config(ROOT / "configs/tiny-svd.yaml", ["--freeze-base"])
    groups = param_groups(frozen, model)
    assert [g["name"] for g in groups] == ["actions"]
    assert not any(p.requires_grad for p in model.denoiser.base_parameters())


def test_half_written_checkpoints_are_never_loaded(tmp_path):
    ckpts = tmp_path / "checkpoints"
    good = ckpts / "step-00000002"
    (good / "model").mkdir(parents=True)
    (good / "trainer_state.json").write_text('{"step": 2, "epoch": 0, "batch_in_epoch": 2}')
    normalizer = ActionNormalizer.fit([np.random.default_rng(0).normal(size=(16, 3))])
    (good / "model" / "normalization.json").write_text(json.dumps(normalizer.to_dict()))
    write_manifest(good)
    assert (good / MANIFEST).is_file()
    (ckpts / ".tmp-step-00000004").mkdir()  # killed while writing
    (ckpts / "step-00000006").mkdir()  # no trainer_state.json, no manifest: incomplete
    (ckpts / "step-00000008").mkdir()
    (ckpts / "step-00000008" / "trainer_state.json").write_text("{}")  # no manifest: incomplete
    assert latest_checkpoint(tmp_path).name == "step-00000002"


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    folder = run_dir / "final" / "denoiser"
    out = {}
    for f in sorted(folder.rglob("*.safetensors")):
        out.update({f"{f.parent.name}/{k}": v for k, v in load_file(f).items()})
    return out


def test_killed_run_resumes_to_identical_weights(tmp_path, nav_data):
    steps = ["--max-steps", "8", "--checkpoint-every", "2"]
    subprocess.run(
        _train_cmd(tmp_path / "straight", nav_data, *steps), check=True, env=ENV, capture_output=True
    )

    run = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(run, nav_data, *steps), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while not (run / "checkpoints" / "step-00000004" / "trainer_state.json").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "final").exists()
    subprocess.run(_train_cmd(run, nav_data, *steps), check=True, env=ENV, capture_output=True)

    a, b = _weights(tmp_path / "straight"), _weights(run)
    assert a.keys() == b.keys() and len(a) > 10
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_process_data_parallel_ranks_end_identical(tmp_path, nav_data):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "configs/accelerate/cpu-2proc.yaml"), "-m", "egoworld", "train",
           str(ROOT / "configs/tiny-wan.yaml"), "--run-dir", str(tmp_path / "ddp"),
           "--data.path", str(nav_data), "--max-steps", "4", "--checkpoint-every", "4"]  # fmt: skip
    subprocess.run(cmd, check=True, env=ENV, capture_output=True, timeout=300)
    checksums = json.loads((tmp_path / "ddp" / "final_state.json").read_text())["rank_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]


def test_bad_runs_exit_with_one_line(tmp_path, nav_data, trainer):
    run = tmp_path / "run"
    code, log = trainer.run(_train_cmd(run, nav_data, "--max-steps", "2")[len(EGOWORLD) :])
    assert code == 0, log
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    cases = [
        (
            _train_cmd(run, nav_data, "--max-steps", "4", "--lr-actions=0.5"),
            "holds a run of a different config",
        ),
        (_train_cmd(tmp_path / "r2", tmp_path / "missing", "--data.format=nwm"), "does not exist"),
        (
            _train_cmd(tmp_path / "r3", nav_data, "--model.action_dim=2"),
            "actions have 3 dims; model.action_dim=2",
        ),
        (_train_cmd(tmp_path / "r4", nav_data, "--max-stepz=3"), "did you mean 'max_steps'"),
        (_train_cmd(tmp_path / "r5", nav_data, "--lr-base=nan"), "lr_base=nan: expected a finite value"),
        (
            _train_cmd(tmp_path / "r6", nav_data, "--checkpoint-every=0"),
            "checkpoint_every=0; expected a positive",
        ),
    ]
    for cmd, message in cases:
        code, log = trainer.run(cmd[len(EGOWORLD) :])
        assert code == 2, log
        last = log.strip().splitlines()[-1]
        assert message in last and "Traceback" not in log, log
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before
    # a failed fresh run leaves no folder behind
    assert not any((tmp_path / f"r{i}").exists() for i in range(2, 7))
