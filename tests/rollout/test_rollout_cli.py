"""`egoworld rollout` end to end, and every bad input: one stderr line, exit 2, nothing written."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from egoworld.cli import main
from egoworld.data.video import VideoReader, write_video

SCRIPT = "forward 0.5m x3; turn_left 15deg x2"  # 5 steps -> 6 frames


def rollout(*extra, model, image, out, actions=SCRIPT):
    return main(["rollout", "--model", str(model), "--image", str(image), "--actions", actions,
                 "--out", str(out), *map(str, extra)])  # fmt: skip


def test_rollout_writes_mp4_frames_gif_and_side_by_side(model_dir, images, tmp_path, capsys):
    gt = tmp_path / "gt.mp4"
    write_video(gt, np.random.default_rng(0).integers(0, 256, (8, 48, 64, 3), dtype=np.uint8), fps=5)
    out = tmp_path / "out" / "walk.mp4"
    code = rollout("--gif", "--gt", gt, "--seed", "3", model=model_dir, image=images["jpg"], out=out)
    assert code == 0, capsys.readouterr().err
    with VideoReader(out) as r:
        assert len(r) == 6 and r.read([0]).shape == (1, 32, 32, 3)
    with VideoReader(out.with_name("walk_side_by_side.mp4")) as r:
        assert len(r) == 6 and r.read([5]).shape == (1, 32, 64, 3)  # GT | prediction
    pngs = sorted((tmp_path / "out" / "walk_frames").glob("*.png"))
    assert [p.name for p in pngs] == [f"frame_{i:05d}.png" for i in range(6)]
    gif = Image.open(out.with_suffix(".gif"))
    assert gif.n_frames == 6 and gif.size == (32, 32)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files left
    # the PNG frames are exactly what the library rollout gives for the same inputs and seed
    from egoworld.rollout import load_actions, load_image
    from egoworld.world_model import WorldModel

    model = WorldModel.from_pretrained(model_dir)
    expected = model.rollout(load_image(images["jpg"], 32, 32), load_actions(SCRIPT, model), seed=3)
    np.testing.assert_array_equal(np.stack([np.asarray(Image.open(p)) for p in pngs]), expected)


def test_custom_frames_dir_and_npy_actions(model_dir, images, tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 3), np.float32))
    out, frames = tmp_path / "p.mp4", tmp_path / "pngs"
    assert rollout("--frames-dir", frames, model=model_dir, image=images["png"], out=out,
                   actions=str(tmp_path / "a.npy")) == 0  # fmt: skip
    assert len(list(frames.glob("frame_*.png"))) == 4 and out.is_file()


def _npy(tmp_path, array):
    np.save(tmp_path / "bad.npy", np.asarray(array, np.float32))
    return str(tmp_path / "bad.npy")


def _broken_png(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    return tmp_path / "broken.png"


def _incomplete(model_dir, tmp_path, remove):
    copy = tmp_path / "incomplete"
    shutil.copytree(model_dir, copy)
    target = copy / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    return copy


BAD = {
    "wrong width": (lambda md, im, t: dict(actions=_npy(t, np.zeros((5, 2))))),
    "too short": (lambda md, im, t: dict(actions=_npy(t, np.zeros((1, 3))))),
    "nan": (lambda md, im, t: dict(actions=_npy(t, [[0, 0, 0], [np.nan, 0, 0]]))),
    "unknown word": (lambda md, im, t: dict(actions="forward 1m; moonwalk 2m")),
    "unreadable image": (lambda md, im, t: dict(image=_broken_png(t))),
    "missing image": (lambda md, im, t: dict(image=t / "nope.png")),
    "missing model": (lambda md, im, t: dict(model=t / "no-model")),
    "model without denoiser": (lambda md, im, t: dict(model=_incomplete(md, t, "denoiser"))),
    "model without weights": (
        lambda md, im, t: dict(model=_incomplete(md, t, "denoiser/base/diffusion_pytorch_model.safetensors"))
    ),
    "short gt": (lambda md, im, t: dict(extra=("--gt", _short_gt(t)))),
    "not mp4": (lambda md, im, t: dict(out=t / "out" / "video.avi")),
    "guidance nan": (lambda md, im, t: dict(extra=("--guidance", "nan"))),
    "steps 0": (lambda md, im, t: dict(extra=("--steps", "0"))),
    "fps inf": (lambda md, im, t: dict(extra=("--fps", "inf"))),
    "huge script": (lambda md, im, t: dict(actions="forward 0.5m x100000000")),
    "bogus device": (lambda md, im, t: dict(extra=("--device", "bogus"))),
    "out is a folder": (lambda md, im, t: dict(out=_folder(t / "out" / "walk.mp4"))),
    "gt folder too short": (lambda md, im, t: dict(extra=("--gt", _short_gt_frames(t)))),
    "empty run folder": (lambda md, im, t: dict(model=_folder(t / "run"))),
    "frames dir holds the image": (lambda md, im, t: dict(image=_image_in(t / "out" / "walk_frames"))),
}
MESSAGES = {
    "wrong width": r"shape \(5, 2\); expected \[N, 3\]",
    "too short": "at least 2",
    "nan": "NaN",
    "unknown word": "unknown word 'moonwalk'",
    "unreadable image": "broken.png: cannot read as an image",
    "missing image": "nope.png",
    "missing model": "no-model",
    "model without denoiser": "incomplete",
    "model without weights": "incomplete or unreadable",
    "short gt": "has 3 frames; the rollout has 6",
    "not mp4": "expected a .mp4",
    "guidance nan": r"argument --guidance: nan; expected a finite number >= 0",
    "steps 0": r"argument --steps: 0; expected an integer in \[1, 1000\]",
    "fps inf": "argument --fps: inf",
    "huge script": "makes 100000001 frames by here; expected at most 10000",
    "bogus device": "argument --device: 'bogus'",
    "out is a folder": "is a folder; expected a .mp4 file path",
    "gt folder too short": "has 3 frames; the rollout has 6",
    "empty run folder": "holds no world model; expected a world-model folder .* or a training run folder",
    "frames dir holds the image": "holds other files|holds the input --image",
}


def _folder(path):
    path.mkdir(parents=True)
    return path


def _image_in(folder):
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "frame_00000.png")
    return folder / "frame_00000.png"


def _short_gt_frames(tmp_path):
    from egoworld.metrics.videos import write_frame_folder

    return write_frame_folder(np.zeros((3, 32, 32, 3), np.uint8), tmp_path / "short_frames")


def _short_gt(tmp_path):
    write_video(tmp_path / "short.mp4", np.zeros((3, 32, 32, 3), np.uint8), fps=5)
    return tmp_path / "short.mp4"


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_exit_2_no_output(case, model_dir, images, tmp_path, capsys):
    args = dict(model=model_dir, image=images["jpg"], out=tmp_path / "out" / "walk.mp4")
    spec = BAD[case](model_dir, images["jpg"], tmp_path)
    extra = spec.pop("extra", ())
    args.update(spec)
    actions = args.pop("actions", SCRIPT)
    capsys.readouterr()
    assert rollout("--gif", *extra, actions=actions, **args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("egoworld rollout: error: ")
    assert re.search(MESSAGES[case], err[0]), err[0]
    out = tmp_path / "out"
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []
    allowed = {"walk.mp4", "walk_frames", "walk_frames/frame_00000.png"}  # what the case itself made
    assert set(made) <= allowed, made  # nothing written, not even a folder of temp files


def test_bad_input_in_a_fresh_process_prints_exactly_one_line(model_dir, images, tmp_path):
    """No import-time warnings or loading bars around the one error line."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "egoworld",
            "rollout",
            "--model",
            str(model_dir),
            "--image",
            str(images["png"]),
            "--actions",
            "forward 1m; hop 1m",
            "--out",
            str(tmp_path / "o.mp4"),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "egoworld rollout: error: unknown word 'hop' in action script step 'hop 1m'; known: "
        "['backward', 'forward', 'stay', 'strafe_left', 'strafe_right', 'turn_left', 'turn_right']"
    ]
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it(model_dir, images, tmp_path, capsys):
    assert rollout("--device", "cuda", model=model_dir, image=images["jpg"], out=tmp_path / "o.mp4") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["egoworld rollout: error: device 'cuda': CUDA is not available here; devices here: cpu"]
    assert not list(tmp_path.iterdir())


def test_outputs_never_replace_inputs(model_dir, images, tmp_path, capsys):
    gt = tmp_path / "g.mp4"
    write_video(gt, np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), fps=5)
    before = gt.read_bytes()
    np.save(tmp_path / "a.npy", np.zeros((6, 3), np.float32))
    cases = [
        (("--gt", gt), gt, "--out .*g.mp4 is the input --gt"),  # rollout --gt g.mp4 --out g.mp4
        (("--frames-dir", model_dir), tmp_path / "p.mp4", "holds other files"),  # would replace the model
    ]
    for extra, out, message in cases:
        capsys.readouterr()
        assert rollout(*extra, model=model_dir, image=images["jpg"], out=out) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and re.search(message, err[0]), err
    assert gt.read_bytes() == before
    capsys.readouterr()
    side = tmp_path / "g_side_by_side.mp4"  # --gt named like the side-by-side output of --out g.mp4
    write_video(side, np.zeros((6, 32, 32, 3), np.uint8), fps=5)
    assert (
        rollout("--gt", side, model=model_dir, image=images["jpg"], out=gt, actions=str(tmp_path / "a.npy"))
        == 2
    )
    assert "is the input --gt" in capsys.readouterr().err
    assert gt.read_bytes() == before


def test_a_training_run_folder_and_a_frames_folder_gt(model_dir, images, tmp_path, capsys):
    """--model RUN_DIR uses final/, else the newest complete checkpoint; --gt takes a folder of frames."""
    import json
    import os
    import stat

    from egoworld.metrics.videos import write_frame_folder

    run = tmp_path / "run"
    for step in (2, 4):
        shutil.copytree(model_dir, run / "checkpoints" / f"step-{step:08d}" / "model")
        (run / "checkpoints" / f"step-{step:08d}" / "trainer_state.json").write_text(
            json.dumps({"step": step})
        )
        (run / "checkpoints" / f"step-{step:08d}" / "manifest.json").write_text("{}")  # complete
    gt = write_frame_folder(np.zeros((8, 64, 64, 3), np.uint8), tmp_path / "gt_frames")
    out = tmp_path / "out" / "walk.mp4"
    old_mask = os.umask(0o022)
    try:
        assert rollout("--gt", gt, model=run, image=images["png"], out=out) == 0
    finally:
        os.umask(old_mask)
    printed = capsys.readouterr().out
    assert (
        f"using {run / 'checkpoints' / 'step-00000004' / 'model'} (the newest complete checkpoint" in printed
    )
    with VideoReader(out.with_name("walk_side_by_side.mp4")) as r:
        assert len(r) == 6 and r.read([0]).shape == (1, 32, 64, 3)
    # outputs are not owner-only: what a plain new file / folder gets under the umask
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert stat.S_IMODE(out.with_name("walk_frames").stat().st_mode) == 0o755
    shutil.copytree(model_dir, run / "final")
    assert rollout(model=run, image=images["png"], out=tmp_path / "o2.mp4") == 0
    assert f"using {run / 'final'} (the run's final model)" in capsys.readouterr().out


def test_far_actions_warn_once_on_stderr(model_dir, images, tmp_path):
    """A walk far beyond the model's training actions gives one warning line on stderr, not an error."""
    np.save(tmp_path / "far.npy", np.array([[0, 0, 0], [50.0, 0, 0], [0, 0, 0]], np.float32))
    proc = subprocess.run(
        [sys.executable, "-m", "egoworld", "rollout", "--model", str(model_dir),
         "--image", str(images["png"]), "--actions", str(tmp_path / "far.npy"),
         "--out", str(tmp_path / "o.mp4"), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("WARNING egoworld.rollout: 1 of 2 steps are far outside"), err
    assert "forward step dx reaches 12.5 m" in err[0]  # 50 units at 0.25 m per unit
