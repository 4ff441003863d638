"""Closed loop: a 2-clip EgoSim run on CPU with tiny presets, bad inputs, and `egoworld sim`."""

import hashlib
import json

import numpy as np
import pytest
import yaml

from egoworld.cli import main
from egoworld.sim.loop import (
    EgoSim,
    EstimatedBackend,
    GroundTruthBackend,
    StateRenderBackend,
    TabletopEpisode,
    episode_state,
    gripper_from_keypoints,
    observation_clip,
)
from egoworld.sim.observe import ObservationModel


@pytest.fixture(scope="module")
def episode_dir(tmp_path_factory):
    from egoworld.worlds.tabletop import run_episode

    root = tmp_path_factory.mktemp("tabletop")
    run_episode(root, seed=3, index=0, frames=17, size=32)
    return root / "episode_00000"


@pytest.fixture(scope="module")
def episode(episode_dir):
    return TabletopEpisode.load(episode_dir)


@pytest.fixture(scope="module")
def model():
    import torch

    torch.manual_seed(0)
    return ObservationModel.build("tiny")  # 9 frames at 32x32, 16 input channels


def _digest(state) -> str:
    keys, vals = state._dump_blocks()
    h = hashlib.sha256(keys.tobytes())
    for v in vals.values():
        h.update(v.tobytes())
    for oid in sorted(state.objects):
        h.update(state.objects[oid].pose.tobytes())
    return h.hexdigest()


def test_two_clip_closed_loop_with_ground_truth_update(episode, model):
    s0 = episode_state(episode, 0)
    before = _digest(s0)
    sim = EgoSim(s0, model, episode.K, backend=GroundTruthBackend(episode), num_inference_steps=2)
    sim.reset(s0, episode.rgb[0])
    video = sim.run(episode.cam_to_world, episode.action(slice(None)), clips=2)
    assert video.shape == (17, 32, 32, 3) and video.dtype == np.uint8
    assert [list(h.frames[[0, -1]]) for h in sim.history] == [[0, 8], [8, 16]]
    moved = set(episode.moved_objects(np.arange(9)))
    assert moved and moved <= set(sim.history[0].report.moved)
    # the carried object is where the episode had it at the end of the last clip that saw it at rest
    # (at 32 px the retracting hand hides it in clip 2's last frames, so clip 2 may skip it)
    oid = sorted(moved)[0]
    gt = episode.object_poses[[8, 16], episode.movable_ids.index(oid), :3]
    seen = 16 if oid in sim.history[1].report.moved else 8
    where = sim.state.objects[oid].world_points().mean(0)
    assert np.linalg.norm(where - gt[seen // 8 - 1]) < 0.03
    # clip 2 started from clip 1's last frame, and S_0 was never modified
    assert np.array_equal(video[8], sim.history[0].video[-1])
    assert _digest(s0) == before


def test_state_render_backend_and_gripper_actions(episode, model):
    s0 = episode_state(episode, 0)
    sim = EgoSim(s0, model, episode.K, num_inference_steps=1)
    assert isinstance(sim.backend, StateRenderBackend)
    kp = episode.keypoints_3d[:9, [0, 4, 8]].astype(float)  # wrist, thumb tip, index tip as a gripper
    video = sim.step(episode.cam_to_world[:9], gripper_from_keypoints(kp))
    assert video.shape == (9, 32, 32, 3)
    assert sim.history[0].skeleton.any()


def test_step_rejects_bad_inputs_and_keeps_the_state(episode, model):
    s0 = episode_state(episode, 0)
    sim = EgoSim(s0, model, episode.K, num_inference_steps=1)
    kp = episode.keypoints_3d[:9].astype(float)
    with pytest.raises(ValueError, match=r"expected \[T, 21, 3\]"):
        sim.step(episode.cam_to_world[:9], kp[:, :20])
    bad = episode.cam_to_world[:9].copy()
    bad[2, :3, :3] *= 2.0
    with pytest.raises(ValueError, match="frame 2 is not a rigid transform"):
        sim.step(bad, kp)
    with pytest.raises(ValueError, match=r"expected \[9, 4, 4\]"):
        sim.step(episode.cam_to_world[:5], kp[:5])
    with pytest.raises(ValueError, match="clips=0"):
        sim.run(episode.cam_to_world, episode.action(slice(None)), clips=0)
    with pytest.raises(ValueError, match="at least 25"):
        sim.run(episode.cam_to_world, episode.action(slice(None)), clips=3)
    assert sim.state is s0 and not sim.history


def test_estimated_backend_needs_local_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="depth model not found"):
        EstimatedBackend(tmp_path / "no-depth-anything")


def test_training_clip_matches_the_episode(episode):
    clip = observation_clip(episode, 4, 9)
    assert clip["target"].shape == clip["scene"].shape == clip["skeleton"].shape == (9, 32, 32, 3)
    assert np.array_equal(clip["target"], episode.rgb[4:13])
    assert clip["mask"].shape == (9, 32, 32) and 0 < clip["mask"].mean() < 1
    assert clip["skeleton"].any()


def test_cli_build_state_run_and_bad_inputs(episode_dir, tmp_path, capsys):
    state, actions, out = tmp_path / "s.npz", tmp_path / "a.npz", tmp_path / "out"
    assert (
        main(
            [
                "sim",
                "build-state",
                "--episode",
                str(episode_dir),
                "--out",
                str(state),
                "--actions-out",
                str(actions),
            ]
        )
        == 0
    )
    digest = hashlib.sha256(state.read_bytes()).hexdigest()
    args = ["sim", "--state", str(state), "--actions", str(actions), "--out", str(out), "--steps", "1"]
    assert main([*args, "--clips", "2", "--episode", str(episode_dir)]) == 0
    assert np.load(out / "observation.npy").shape == (17, 32, 32, 3)
    assert (out / "state_final.npz").is_file() and (out / "video.mp4").is_file()

    data = dict(np.load(actions))
    bad_kp = tmp_path / "bad_kp.npz"
    np.savez(bad_kp, **{**data, "hand_keypoints": data["hand_keypoints"][:, :20]})
    bad_pose = tmp_path / "bad_pose.npz"
    poses = data["camera_poses"].copy()
    poses[3, 3, 0] = 1.0
    np.savez(bad_pose, **{**data, "camera_poses": poses})
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a state")
    cases = [
        (["--state", str(tmp_path / "missing.npz")], "does not exist"),
        (["--state", str(corrupt)], "corrupt"),
        (["--clips", "0"], "clips=0"),
        (["--actions", str(bad_kp)], "expected [T, 21, 3]"),
        (["--actions", str(bad_pose)], "frame 3 has bottom row"),
    ]
    capsys.readouterr()
    for extra, message in cases:
        base = {
            "--state": str(state),
            "--actions": str(actions),
            "--out": str(tmp_path / "o2"),
            "--clips": "2",
        }
        for k, v in zip(extra[::2], extra[1::2]):
            base[k] = v
        argv = ["sim", "--steps", "1"] + [x for kv in base.items() for x in kv]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not (tmp_path / "o2").exists()
    assert hashlib.sha256(state.read_bytes()).hexdigest() == digest  # the saved state is untouched


def test_cli_train_observe(episode_dir, tmp_path, capsys):
    """`sim train-observe` is an `egoworld train` run: a run folder beside --out, a time budget that
    stops at a checkpoint, and the same command again goes on from it to --steps."""
    from egoworld.sim.observe import ObservationModel

    out = tmp_path / "model"
    argv = ["sim", "train-observe", "--data", str(episode_dir.parent), "--out", str(out), "--steps", "3",
            "--batch", "2"]  # fmt: skip
    assert main([*argv, "--budget", "1e-9", "--no-progress"]) == 0  # over budget after the first step
    printed = capsys.readouterr()
    assert "--budget reached; run again to go on to 3" in printed.out and printed.err == ""
    run = tmp_path / "model.run"
    assert json.loads((run / "final_state.json").read_text())["step"] == 1
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000001"]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "trained to step 3; saved to" in printed.out
    assert "3/3" in printed.err and "loss=" in printed.err  # the trainer's progress bar
    assert "cutting clips" in printed.err  # and one while the episodes are cut into clips
    state = json.loads((run / "final_state.json").read_text())
    assert state["completed"] and state["step"] == 3
    assert yaml.safe_load((run / "config.yaml").read_text())["observation"]["preset"] == "tiny-pixel"
    assert ObservationModel.from_pretrained(out).config.preset == "tiny-pixel"
    assert main(["sim", "train-observe", "--data", str(tmp_path / "none"), "--out", str(out)]) == 2


def test_cli_train_observe_on_episodes_shorter_than_a_clip(tmp_path, capsys):
    from egoworld.worlds.tabletop import run_episode

    run_episode(tmp_path / "short", seed=3, index=0, frames=5, size=32)
    argv = ["sim", "train-observe", "--data", str(tmp_path / "short"), "--out", str(tmp_path / "m")]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no clip of 9 frames (its episodes are shorter)" in err[0], err
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.run").exists()
