# ruff: noqa: E501  (the case table reads best one case per line)
"""Every command, fed bad input: one line, non-zero exit, no traceback, nothing written, inputs intact.

A table of cases (command line + the words the error must contain). Each case runs the CLI in-process
inside one shared workspace of valid and damaged inputs; the workspace is fingerprinted (every
file's path, size and content hash) before and after, so a case that writes a file, leaves a
temporary behind or touches an input fails. Outputs of the cases point into the workspace too.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from egoworld.cli import main

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """The workspace: valid inputs (image, actions, model, video, dataset) and damaged ones."""
    from egoworld.data.video import write_video
    from egoworld.world_model import WorldModel, WorldModelConfig
    from tests.data.data_builders import circle_poses, write_nwm_traj

    w = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(w / "image.png")
    (w / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (w / "empty.png").write_bytes(b"")
    (w / "text.txt").write_text("hello")
    np.save(w / "actions.npy", np.zeros((5, 3), np.float32))
    np.save(w / "actions_nan.npy", np.full((5, 3), np.nan, np.float32))
    np.save(w / "actions_2d4.npy", np.zeros((5, 4), np.float32))
    np.savez(w / "actions.npz", actions=np.zeros((5, 3), np.float32))
    (w / "actions_trunc.npz").write_bytes((w / "actions.npz").read_bytes()[:60])
    np.save(w / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    torch.manual_seed(0)
    cfg = WorldModelConfig(
        family="svd", num_frames=4, height=32, width=32, hidden_dim=32, num_inference_steps=1
    )
    WorldModel.build(cfg).save_pretrained(w / "model")
    (w / "broken_model").mkdir()
    (w / "broken_model" / "egoworld_world_model.json").write_text("{not json")
    write_video(w / "gt.mp4", rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), fps=5)
    (w / "gt_trunc.mp4").write_bytes((w / "gt.mp4").read_bytes()[:200])
    pos, yaw = circle_poses(12)
    write_nwm_traj(w / "nwm" / "traj_a", pos, yaw)
    bomb = w / "bomb" / "traj_a"
    write_nwm_traj(bomb, pos, yaw)
    a: list = []
    for _ in range(30):
        a = [a, a]
    (bomb / "traj_data.pkl").write_bytes(pickle.dumps({"position": a, "yaw": [0.0]}))
    evil = w / "evil" / "traj_a"
    write_nwm_traj(evil, pos, yaw)
    (evil / "traj_data.pkl").write_bytes(b"cos\nsystem\n(S'touch " + str(w / "PWNED").encode() + b"'\ntR.")
    (w / "cfg_list.yaml").write_text(yaml.safe_dump([1, 2]))
    (w / "cfg_scalar.yaml").write_text("42\n")
    (w / "cfg_type.yaml").write_text(yaml.safe_dump({"max_steps": "abc"}))
    (w / "cfg_tag.yaml").write_text("!!python/object/apply:os.system ['true']\n")
    (w / "cfg_ok.yaml").write_text(yaml.safe_dump({"run_dir": str(w / "out_run"), "max_steps": 2}))
    (w / "dir_as_file").mkdir()
    os.symlink(w / "gt.mp4", w / "link_to_gt.mp4")
    os.symlink(w / "dir_as_file", w / "link_to_dir.png")
    os.symlink(w / "nowhere", w / "dangling.png")
    (w / "nested").mkdir()
    return w


def fingerprint(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file():
                out[rel] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[rel] = ("dir",)
    return out


R = ["rollout", "--model", "{w}/model", "--image", "{w}/image.png", "--actions", "{w}/actions.npy"]
ROLL = [*R, "--out", "{w}/out.mp4"]

# (id, argv with {w} for the workspace, regex the one error line must match)
CASES = [
    # demo
    ("demo-frames-1", ["demo", "--frames", "1", "--out", "{w}/demo"], "frames"),
    ("demo-steps-neg", ["demo", "--steps=-1", "--out", "{w}/demo"], "steps"),
    ("demo-out-is-file", ["demo", "--out", "{w}/image.png"], "image.png"),
    ("demo-model-missing", ["demo", "--model", "{w}/nope", "--out", "{w}/demo"], "nope"),
    ("demo-model-broken", ["demo", "--model", "{w}/broken_model", "--out", "{w}/demo"], "broken_model"),
    ("worlds-camera-nav", ["worlds", "generate", "--task", "nav", "--camera", "orbit", "--out", "{w}/worlds"],
     "camera"),
    ("worlds-camera-unknown", ["worlds", "generate", "--task", "tabletop", "--camera", "drone", "--out",
                               "{w}/worlds"], "camera"),
    # rollout
    ("rollout-model-missing", ["rollout", "--model", "{w}/nope", "--image", "{w}/image.png",
                               "--actions", "{w}/actions.npy", "--out", "{w}/out.mp4"], "nope"),
    ("rollout-model-broken", ["rollout", "--model", "{w}/broken_model", "--image", "{w}/image.png",
                              "--actions", "{w}/actions.npy", "--out", "{w}/out.mp4"], "broken_model"),
    ("rollout-model-is-dataset", ["rollout", "--model", "{w}/nwm", "--image", "{w}/image.png",
                                  "--actions", "{w}/actions.npy", "--out", "{w}/out.mp4"], "nwm"),
    ("rollout-image-garbage", [*R[:4], "{w}/garbage.png", *R[5:], "--out", "{w}/out.mp4"], "garbage.png"),
    ("rollout-image-empty", [*R[:4], "{w}/empty.png", *R[5:], "--out", "{w}/out.mp4"], "empty.png"),
    ("rollout-image-text", [*R[:4], "{w}/text.txt", *R[5:], "--out", "{w}/out.mp4"], "text.txt"),
    ("rollout-image-dir-link", [*R[:4], "{w}/link_to_dir.png", *R[5:], "--out", "{w}/out.mp4"], "link_to_dir"),
    ("rollout-image-dangling", [*R[:4], "{w}/dangling.png", *R[5:], "--out", "{w}/out.mp4"], "dangling"),
    ("rollout-actions-nan", [*R[:6], "{w}/actions_nan.npy", "--out", "{w}/out.mp4"], "NaN|finite"),
    ("rollout-actions-width", [*R[:6], "{w}/actions_2d4.npy", "--out", "{w}/out.mp4"], "4|shape"),
    ("rollout-actions-trunc-npz", [*R[:6], "{w}/actions_trunc.npz", "--out", "{w}/out.mp4"], "actions_trunc"),
    ("rollout-actions-pickle", [*R[:6], "{w}/objects.npy", "--out", "{w}/out.mp4"], "objects.npy"),
    ("rollout-script-bad", [*R[:6], "fly 3m x2", "--spacing", "0.25", "--out", "{w}/out.mp4"], "fly"),
    ("rollout-script-huge", [*R[:6], "forward 0.5m x100000000", "--spacing", "0.25", "--out", "{w}/out.mp4"],
     "100000000|at most"),
    ("rollout-dataset-unknown", [*ROLL, "--dataset", "huron"], "huron"),
    ("rollout-out-not-mp4", [*ROLL[:-1], "{w}/out.avi"], r"\.mp4"),
    ("rollout-out-is-dir", [*ROLL[:-1], "{w}/dir_as_file"], "dir_as_file"),
    ("rollout-out-is-gt", [*ROLL[:-1], "{w}/gt.mp4", "--gt", "{w}/gt.mp4"], "gt.mp4"),
    ("rollout-out-links-to-gt", [*ROLL[:-1], "{w}/link_to_gt.mp4", "--gt", "{w}/gt.mp4"], "gt.mp4"),
    ("rollout-gt-truncated", [*ROLL, "--gt", "{w}/gt_trunc.mp4"], "gt_trunc"),
    ("rollout-steps-0", [*ROLL, "--steps", "0"], "steps"),
    ("rollout-guidance-nan", [*ROLL, "--guidance", "nan"], "guidance"),
    ("rollout-fps-inf", [*ROLL, "--fps", "inf"], "fps"),
    ("rollout-device-bogus", [*ROLL, "--device", "bogus"], "bogus"),
    ("rollout-spacing-neg", [*ROLL, "--spacing=-1"], "spacing"),
    ("rollout-readonly-out", [*ROLL[:-1], "/proc/egoworld-sweep/out.mp4"], "egoworld-sweep|proc"),
    # eval
    ("eval-pred-missing", ["eval", "--pred", "{w}/nope.mp4", "--gt", "{w}/gt.mp4"], "nope"),
    ("eval-gt-truncated", ["eval", "--pred", "{w}/gt.mp4", "--gt", "{w}/gt_trunc.mp4"], "gt_trunc"),
    ("eval-metrics-unknown", ["eval", "--pred", "{w}/gt.mp4", "--gt", "{w}/gt.mp4", "--metrics", "fid"], "fid"),
    ("eval-horizons-huge", ["eval", "--pred", "{w}/gt.mp4", "--gt", "{w}/gt.mp4", "--horizons",
                            "99999999999999999999"], "horizon"),
    ("eval-horizons-text", ["eval", "--pred", "{w}/gt.mp4", "--gt", "{w}/gt.mp4", "--horizons", "a,b"], "horizon"),
    ("eval-alexnet-bad", ["eval", "--pred", "{w}/gt.mp4", "--gt", "{w}/gt.mp4", "--metrics", "lpips",
                          "--alexnet", "{w}/text.txt"], "text.txt"),
    ("eval-out-onto-gt", ["eval", "--pred", "{w}/gt.mp4", "--gt", "{w}/gt.mp4", "--out", "{w}/gt.mp4"], "gt.mp4"),
    # train
    ("train-config-missing", ["train", "{w}/nope.yaml"], "nope.yaml"),
    ("train-config-list", ["train", "{w}/cfg_list.yaml"], "cfg_list"),
    ("train-config-scalar", ["train", "{w}/cfg_scalar.yaml"], "cfg_scalar"),
    ("train-config-type", ["train", "{w}/cfg_type.yaml"], "max_steps"),
    ("train-config-yaml-tag", ["train", "{w}/cfg_tag.yaml"], "cfg_tag"),
    ("train-unknown-key", ["train", "{w}/cfg_ok.yaml", "--max-stepz", "3"], "max_steps"),
    ("train-lr-nan", ["train", "{w}/cfg_ok.yaml", "--lr-base", "nan"], "lr_base"),
    ("train-max-steps-0", ["train", "{w}/cfg_ok.yaml", "--max-steps", "0"], "max_steps"),
    ("train-max-steps-neg", ["train", "{w}/cfg_ok.yaml", "--max-steps=-5"], "max_steps"),
    ("train-ckpt-every-0", ["train", "{w}/cfg_ok.yaml", "--checkpoint-every", "0"], "checkpoint_every"),
    ("train-log-every-0", ["train", "{w}/cfg_ok.yaml", "--log-every", "0"], "log_every"),
    ("train-init-broken", ["train", "{w}/cfg_ok.yaml", "--init-from", "{w}/broken_model",
                           "--data.format", "nwm", "--data.path", "{w}/nwm", "--data.dataset-name", "recon"], "broken_model"),
    ("train-data-missing", ["train", "{w}/cfg_ok.yaml", "--data.format", "nwm", "--data.path", "{w}/nope"], "nope"),
    ("train-real-random", ["train", "{w}/cfg_ok.yaml", "--model.preset", "svd-xt", "--model.height", "512",
                           "--model.width", "512", "--data.format", "nwm", "--data.path", "{w}/nwm", "--data.dataset-name", "recon"],
     "allow-random-init"),
    ("train-action-mode-unknown", ["train", "{w}/cfg_ok.yaml", "--data.action_mode", "absolute"], "action_mode"),
    ("train-mirror-humanoid", ["train", "{w}/cfg_ok.yaml", "--data.format", "onex", "--data.mirror", "true"],
     "navigation data only"),
    # data
    ("data-check-missing", ["data", "check", "{w}/nope"], "nope"),
    ("data-stats-out-into-dataset", ["data", "stats", "{w}/nwm", "--out", "{w}/nwm/traj_a/stats.json",
                                     "--spacing", "0.25"], "nwm"),
    ("data-stats-pickle-bomb", ["data", "stats", "{w}/bomb", "--out", "{w}/stats.json", "--spacing", "0.25"],
     "traj_data.pkl"),
    ("data-stats-evil-pickle", ["data", "stats", "{w}/evil", "--out", "{w}/stats.json", "--spacing", "0.25"],
     "traj_data.pkl"),
    ("data-stats-frame-step-0", ["data", "stats", "{w}/nwm", "--out", "{w}/stats.json", "--frame-step", "0"],
     "frame-step|frame_step"),
    ("data-convert-onto-input", ["data", "convert", "{w}/gt.mp4", "{w}/gt.mp4"], "gt.mp4"),
    # worlds
    ("worlds-task-unknown", ["worlds", "generate", "--task", "fly", "--out", "{w}/worlds"], "fly"),
    ("worlds-size-0", ["worlds", "generate", "--task", "nav", "--out", "{w}/worlds", "--size", "0"], "size"),
    ("worlds-episodes-neg", ["worlds", "generate", "--task", "nav", "--out", "{w}/worlds", "--episodes=-1"],
     "episodes"),
    ("worlds-out-is-dataset", ["worlds", "generate", "--task", "nav", "--out", "{w}/nwm", "--episodes", "1"],
     "nwm"),
    ("worlds-textures-empty", ["worlds", "generate", "--task", "nav", "--out", "{w}/worlds",
                               "--textures", "{w}/nested"], "nested"),
    # sim
    ("sim-build-episode-missing", ["sim", "build-state", "--episode", "{w}/nope", "--out", "{w}/s.npz"], "nope"),
    ("sim-build-out-onto-input", ["sim", "build-state", "--episode", "{w}/nested", "--out", "{w}/image.png"],
     "image.png|nested"),
    ("sim-build-voxel-0", ["sim", "build-state", "--episode", "{w}/nested", "--out", "{w}/s.npz", "--voxel", "0"],
     "voxel"),
    ("sim-state-is-npy", ["sim", "--state", "{w}/actions.npy", "--actions", "{w}/actions.npz", "--out",
                          "{w}/sim_out", "run"], "actions.npy|state"),
    ("sim-fov-0", ["sim", "--fov", "0", "build-state", "--episode", "{w}/nested", "--out", "{w}/s.npz"], "fov"),
    ("sim-train-steps-0", ["sim", "train-observe", "--data", "{w}/nested", "--out", "{w}/obs", "--steps", "0"],
     "steps"),
    # bench, experiment, play
    ("bench-steps-0", ["bench", "latency", "--steps", "0"], "steps"),
    ("bench-family-unknown", ["bench", "latency", "--families", "sora"], "sora"),
    ("bench-device-bogus", ["bench", "latency", "--device", "gpu"], "gpu"),
    ("experiment-budget-bad", ["experiment", "internet-prior", "--budget", "huge", "--out", "{w}/exp"], "huge"),
    ("experiment-workers-0", ["experiment", "internet-prior", "--workers", "0", "--out", "{w}/exp"], "workers"),
    ("play-model-broken", ["play", "--model", "{w}/broken_model", "--port", "0"], "broken_model"),
    ("play-port-bad", ["play", "--port", "70000"], "port"),
    # sim prepare, worlds --format egodex
    ("sim-prepare-dir-missing", ["sim", "prepare", "{w}/nope", "--out", "{w}/prep", "--size", "32", "32", "--frames", "9",
                                 "--depth", "{w}/nested"], "nope"),
    ("sim-prepare-video-without-poses", ["sim", "prepare", "{w}", "--out", "{w}/../sweep_prep", "--size", "32", "32",
                                         "--frames", "9", "--depth", "{w}/nested"], "gt.mp4 has no poses"),
    ("sim-prepare-no-episodes", ["sim", "prepare", "{w}/nested", "--out", "{w}/prep", "--size", "32", "32", "--frames",
                                 "9", "--depth", "{w}/nested"], "no EgoDex episodes"),
    ("sim-prepare-frames-8", ["sim", "prepare", "{w}/nested", "--out", "{w}/prep", "--size", "32", "32", "--frames", "8",
                              "--depth", "{w}/nested"], "frames"),
    ("sim-prepare-size-30", ["sim", "prepare", "{w}/nested", "--out", "{w}/prep", "--size", "30", "32", "--frames", "9",
                             "--depth", "{w}/nested"], "multiples of 16"),
    ("sim-prepare-no-depth", ["sim", "prepare", "{w}/nested", "--out", "{w}/prep", "--size", "32", "32", "--frames", "9"],
     "depth source"),
    ("sim-prepare-model-wrong-family", ["sim", "prepare", "{w}/nested", "--out", "{w}/prep", "--size", "32", "32",
                                        "--frames", "9", "--depth-model", "{w}/model/image_encoder"], "Depth Anything"),
    ("sim-prepare-out-is-input", ["sim", "prepare", "{w}/nested", "--out", "{w}/nested", "--size", "32", "32", "--frames",
                                  "9", "--depth", "{w}/nested"], "nested"),
    ("sim-prepare-out-is-file", ["sim", "prepare", "{w}/nested", "--out", "{w}/image.png", "--size", "32", "32",
                                 "--frames", "9", "--depth", "{w}/nested"], "image.png"),
    ("sim-prepare-check-missing", ["sim", "prepare", "--check", "{w}/nope"], "nope"),
    ("sim-prepare-check-not-prepared", ["sim", "prepare", "--check", "{w}/nested"], "egoworld_sim_data.json"),
    ("worlds-egodex-nav", ["worlds", "generate", "--task", "nav", "--format", "egodex", "--out", "{w}/worlds"], "tabletop"),
    ("worlds-egodex-gripper", ["worlds", "generate", "--task", "tabletop", "--effector", "gripper", "--format", "egodex",
                               "--out", "{w}/worlds"], "hand effector"),
    ("worlds-format-unknown", ["worlds", "generate", "--task", "tabletop", "--format", "lerobot", "--out", "{w}/worlds"],
     "lerobot"),
    # sim convert-inp (original Wan / VideoX-Fun layout -> diffusers)
    ("sim-convert-src-missing", ["sim", "convert-inp", "{w}/nope", "--out", "{w}/conv"], "nope"),
    ("sim-convert-src-no-config", ["sim", "convert-inp", "{w}/nwm", "--out", "{w}/conv"], "holds no config.json"),
    ("sim-convert-src-wrong-family", ["sim", "convert-inp", "{w}/model/image_encoder", "--out", "{w}/conv"],
     "not an original Wan transformer config"),
    ("sim-convert-out-is-file", ["sim", "convert-inp", "{w}/nested", "--out", "{w}/image.png"], "image.png"),
    ("sim-convert-out-is-src", ["sim", "convert-inp", "{w}/nested", "--out", "{w}/nested"], "nested"),
    ("sim-convert-out-not-ours", ["sim", "convert-inp", "{w}/nested", "--out", "{w}/nwm"], "nwm"),
    ("sim-convert-components-missing", ["sim", "convert-inp", "{w}/nested", "--out", "{w}/conv", "--components",
                                        "{w}/nope"], "nope"),
    ("sim-convert-components-not-wan", ["sim", "convert-inp", "{w}/nested", "--out", "{w}/conv", "--components",
                                        "{w}/nwm"], "no vae/"),
    ("sim-trunc-0", ["sim", "--trunc", "0", "build-state", "--episode", "{w}/nested", "--out", "{w}/s.npz"], "trunc"),
    ("sim-convert-dtype-bad", ["sim", "convert-inp", "{w}/nested", "--out", "{w}/conv", "--dtype", "fp8"], "fp8"),
    # train: EgoSim's observation model (observation: section)
    ("train-observation-preset-unknown", ["train", "{w}/cfg_ok.yaml", "--observation.preset", "huge",
                                          "--observation.data", "{w}/nested"], "huge"),
    ("train-observation-data-missing", ["train", "{w}/cfg_ok.yaml", "--observation.preset", "tiny",
                                        "--observation.data", "{w}/nope"], "nope"),
    ("train-observation-data-empty", ["train", "{w}/cfg_ok.yaml", "--observation.preset", "tiny",
                                      "--observation.data", "{w}/nested"], "holds neither"),
    ("train-observation-init-world-model", ["train", "{w}/cfg_ok.yaml", "--observation.preset", "tiny",
                                            "--observation.data", "{w}/nested", "--init-from", "{w}/model"],
     "holds a world model"),
    ("train-observation-real-random", ["train", "{w}/cfg_ok.yaml", "--observation.preset", "wan2.1-fun-14b-inp",
                                       "--observation.data", "{w}/nested"], "allow-random-init"),
    ("train-observation-without-preset", ["train", "{w}/cfg_ok.yaml", "--observation.use-scene", "false"],
     "observation.preset"),
    ("train-observation-with-model", ["train", "{w}/cfg_ok.yaml", "--observation.preset", "tiny",
                                      "--observation.data", "{w}/nested", "--model.family", "wan"], "model.family"),
]  # fmt: skip


def test_the_sweep_covers_every_command():
    from egoworld.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    covered = {argv[0] for _, argv, _ in CASES}
    assert set(sub.choices) <= covered, set(sub.choices) - covered
    assert len(CASES) >= 60


@pytest.mark.parametrize("argv, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(ws, capsys, argv, pattern):
    import re

    argv = [a.replace("{w}", str(ws)) for a in argv]
    before = fingerprint(ws)
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse reports its errors this way
        code = stop.code
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, None), f"exit {code}; stderr: {err!r}"
    assert "Traceback" not in out + err
    assert len(lines) == 1, f"expected one line, got: {lines}"
    assert lines[0].startswith(f"egoworld {argv[0]}") and "error" in lines[0], lines[0]
    assert re.search(pattern, lines[0]), f"{lines[0]!r} does not name {pattern!r}"
    assert fingerprint(ws) == before, "the command wrote, removed or changed files in the workspace"
    assert not (ws / "PWNED").exists()
