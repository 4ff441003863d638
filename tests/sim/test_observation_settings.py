"""One set of settings: a saved observation model records how its training states were made, and
`EgoSim` / `egoworld sim` use that record unless told otherwise (one line per departure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from egoworld.cli import main
from egoworld.sim.observe import CONFIG_NAME, ObservationModel
from egoworld.sim.observe_config import TrainingSettings
from egoworld.sim.run_settings import run_settings
from egoworld.sim.state import StateConfig

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
RECORD = TrainingSettings(
    render="splat",
    voxel_size=0.03,
    trunc_voxel_multiplier=4.0,
    depth_max=3.0,
    fuse_frames=1,
    depth="ground truth",
    data="tabletop episodes",
)


def test_settings_are_saved_with_the_model_and_checked_on_load(tmp_path):
    import torch

    torch.manual_seed(0)
    model = ObservationModel.build("tiny")
    assert model.config.training is None  # built, not trained: nothing recorded
    model.config.training = RECORD
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / CONFIG_NAME).read_text())
    assert saved["training"]["render"] == "splat" and saved["training"]["voxel_size"] == 0.03
    assert ObservationModel.from_pretrained(tmp_path / "m").config.training == RECORD
    # a config written before the record existed still loads
    (tmp_path / "m" / CONFIG_NAME).write_text(json.dumps({k: v for k, v in saved.items() if k != "training"}))
    assert ObservationModel.from_pretrained(tmp_path / "m").config.training is None
    for bad, message in (
        ({"render": "pathtrace"}, "training render='pathtrace'"),
        ({"voxel_size": -1}, "training voxel_size=-1"),
        ({"colour": "red"}, "not a valid observation config"),
    ):
        (tmp_path / "m" / CONFIG_NAME).write_text(json.dumps({**saved, "training": bad}))
        with pytest.raises(ValueError, match=message):
            ObservationModel.from_pretrained(tmp_path / "m")


def test_run_settings_follow_training_unless_overridden():
    state = StateConfig(voxel_size=0.03)
    s = run_settings(RECORD, state)
    assert (s.render, s.truncation(False), s.truncation(True), s.notes) == ("splat", 4.0, 8.0, [])
    s = run_settings(None, state)  # nothing recorded: the renderer's default and the state's truncation
    assert (s.render, s.truncation(False), s.notes) == ("raycast", 4.0, [])
    s = run_settings(RECORD, StateConfig(voxel_size=0.01), render="raycast", trunc_voxel_multiplier=6)
    assert (s.render, s.truncation(False), s.truncation(True)) == ("raycast", 6.0, 6.0)
    assert len(s.notes) == 3
    assert "--render raycast differs from the model's training renderer (splat)" in s.notes[0]
    assert "voxel size 0.01 m differs from the model's training voxel size (0.03 m)" in s.notes[1]
    assert "--trunc 6 differs from the model's training truncation (4 voxels)" in s.notes[2]
    assert run_settings(RECORD, state, render="splat", trunc_voxel_multiplier=4).notes == []


def test_egosim_uses_the_record(K):
    import torch

    from egoworld.sim.loop import EgoSim
    from egoworld.sim.state import SceneState

    torch.manual_seed(0)
    model = ObservationModel.build("tiny")
    model.config.training = RECORD
    state = SceneState(StateConfig(voxel_size=0.03))
    sim = EgoSim(state, model, K)
    assert sim.render_method == "splat" and sim.settings.truncation(True) == 8.0
    assert EgoSim(state, model, K, render_method="raycast").settings.notes


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("settings") / "w"
    argv = ["worlds", "generate", "--task", "tabletop", "--episodes", "1", "--frames", "9", "--size", "32"]
    done = subprocess.run(
        [sys.executable, "-m", "egoworld", *argv, "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    return out


def test_train_observe_records_and_sim_run_follows(episodes, tmp_path, capsys):
    model = tmp_path / "model"
    argv = [
        "sim",
        "train-observe",
        "--data",
        str(episodes),
        "--out",
        str(model),
        "--steps",
        "1",
        "--batch",
        "1",
    ]
    assert main([*argv, "--render", "splat", "--no-progress"]) == 0
    training = ObservationModel.from_pretrained(model).config.training
    assert (training.render, training.voxel_size, training.trunc_voxel_multiplier) == ("splat", 0.03, 4.0)
    assert training.depth == "ground truth" and training.fuse_frames == 1

    state, actions = tmp_path / "s.npz", tmp_path / "a.npz"
    episode = str(episodes / "episode_00000")
    assert (
        main(["sim", "build-state", "--episode", episode, "--out", str(state), "--actions-out", str(actions)])
        == 0
    )
    run = ["sim", "--state", str(state), "--actions", str(actions), "--model", str(model), "--steps", "1"]
    capsys.readouterr()
    assert main([*run, "--out", str(tmp_path / "o1")]) == 0
    assert "note:" not in capsys.readouterr().err  # nothing overridden
    summary = json.loads((tmp_path / "o1" / "summary.json").read_text())
    assert summary["settings"] == {
        "render": "splat",
        "truncation_voxels": 4.0,
        "estimated_truncation_voxels": 8.0,
        "prompt": "",
    }
    assert main([*run, "--out", str(tmp_path / "o2"), "--render", "raycast", "--trunc", "4"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["note: --render raycast differs from the model's training renderer (splat)"]
    assert json.loads((tmp_path / "o2" / "summary.json").read_text())["settings"]["render"] == "raycast"
    assert main([*run, "--out", str(tmp_path / "o3"), "--trunc", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trunc" in err[0] and not (tmp_path / "o3").exists()
    np.testing.assert_array_equal(np.load(tmp_path / "o1" / "observation.npy").shape, (9, 32, 32, 3))
