"""The CLI entry point, its help texts, its one-line errors and the demo."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from egoworld.cli import build_parser, main

COMMANDS = {"demo", "train", "rollout", "eval", "data", "worlds", "sim", "bench"}
# the commands (and sub-actions) whose help must have a description and examples
HELPED = [
    ("demo",),
    ("rollout",),
    ("eval",),
    ("sim",),
    ("sim", "build-state"),
    ("sim", "train-observe"),
    ("worlds",),
    ("worlds", "generate"),
    ("experiment",),
    ("experiment", "internet-prior"),
]


def _sub(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


def test_every_documented_command_is_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    missing = COMMANDS - set(sub.choices)
    assert not missing, f"commands not registered yet: {missing}"


def test_help_is_fast_and_imports_no_torch():
    code = "import sys; from egoworld.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("names", HELPED, ids=" ".join)
def test_help_has_a_description_and_an_example(names):
    parser = _sub(build_parser(), *names)
    assert parser.description and len(parser.description) > 40
    text = parser.format_help()
    assert "examples:" in text and "  egoworld " in text.split("examples:")[1]


def test_help_lists_choices_and_defaults():
    from egoworld.sim.observe import PRESETS
    from egoworld.sim.state import EPISODE_VOXEL_SIZE
    from egoworld.worlds import TASKS
    from egoworld.worlds.hands import EFFECTORS
    from egoworld.worlds.nav import SCRIPTS

    parser = build_parser()
    gen = _sub(parser, "worlds", "generate")
    assert tuple(_option(gen, "--task").choices) == TASKS
    assert tuple(_option(gen, "--effector").choices) == EFFECTORS
    assert tuple(_option(gen, "--trajectory").choices) == SCRIPTS
    assert "{nav,humanoid,tabletop,passive,turns}" in gen.format_help()
    train = _sub(parser, "sim", "train-observe")
    assert set(_option(train, "--preset").choices) <= set(PRESETS)
    # one voxel default, from the library, in both commands
    assert _option(train, "--voxel").default == EPISODE_VOXEL_SIZE
    assert _option(_sub(parser, "sim", "build-state"), "--voxel").default == EPISODE_VOXEL_SIZE
    eval_help = " ".join(_sub(parser, "eval").format_help().split())
    assert "default: psnr,ssim,scs" in eval_help and "default 2,4,8,16" in eval_help


def test_command_constants_match_the_library():
    """Commands keep copies of a few library constants so that --help imports no torch."""
    import egoworld.commands.demo as demo_cmd
    import egoworld.commands.experiment as experiment_cmd
    import egoworld.commands.rollout as rollout_cmd
    import egoworld.commands.sim as sim_cmd
    from egoworld import checkpoints, rollout, world_model
    from egoworld.experiments.internet_prior import STAGES
    from egoworld.sim import observe

    assert rollout_cmd.MAX_SAMPLER_STEPS == sim_cmd.MAX_SAMPLER_STEPS == rollout.MAX_SAMPLER_STEPS
    assert (
        demo_cmd.MAX_FRAMES == rollout.MAX_FRAMES and demo_cmd.MAX_SAMPLER_STEPS == rollout.MAX_SAMPLER_STEPS
    )
    assert rollout.MODEL_CONFIG_NAME == world_model.CONFIG_NAME
    assert rollout.CHECKPOINT_RE.pattern == checkpoints.CKPT_RE.pattern
    assert experiment_cmd.STAGE_NAMES == STAGES
    assert observe.CONFIG_NAME == "egoworld_observation.json"  # sim train-observe's replace marker
    from egoworld.sim import train_observe

    assert train_observe.OBSERVATION_MARKER == observe.CONFIG_NAME


def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--frames", "9", "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert "egoworld demo: using" in printed
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["frames"] == 9 and set(metrics["psnr"]) == {"frame_2", "frame_4", "frame_8"}
    assert (tmp_path / "demo" / "side_by_side.mp4").stat().st_size > 0
    assert (tmp_path / "demo" / "metrics.json").stat().st_mode & 0o044  # not owner-only
    # the line the demo prints to score its prediction again works as printed
    hint = next(line for line in printed.splitlines() if line.startswith("score it again: "))
    argv = hint.removeprefix("score it again: egoworld ").split() + ["--out", str(tmp_path / "report")]
    assert main(argv) == 0
    report = json.loads((tmp_path / "report" / "results.json").read_text())
    assert report["meta"]["metrics"] == ["psnr", "ssim"]  # the prediction has no instance masks
    assert report["meta"]["videos"]["prediction"]["gt_resized_from"][0] >= 32
    # the eval of the demo's own pair agrees with the demo's metrics (both at 32 px)
    assert report["mean"]["psnr"]["8"] == pytest.approx(metrics["psnr"]["frame_8"], abs=1.5)


def _one_error_line(capsys, command: str) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"egoworld {command}: error: "), err
    assert "Traceback" not in captured.err
    return err[0]


BAD_ARGV = [
    (["demo", "--frames", "1"], "demo", "argument --frames: 1; expected an integer in [2, 10000]"),
    (["demo", "--steps=-1"], "demo", "argument --steps: -1; expected an integer in [1, 1000]"),
    (["demo", "--steps", "0"], "demo", "--steps: 0"),
    (["demo", "--frames", "100000000"], "demo", "--frames: 100000000"),
    (["demo", "--seed", "x"], "demo", "'x' is not an integer"),
    (["demo", "--model", "no-such-model"], "demo", "model no-such-model not found"),
    (["demo", "--out", "a-file"], "demo", "a-file is a file"),
    (["worlds", "generate", "--task", "fly", "--out", "w"], "worlds generate", "invalid choice: 'fly'"),
    (["worlds", "generate", "--task", "nav", "--out", "w", "--size", "inf"], "worlds generate", "--size"),
    (["experiment"], "experiment", "required"),
    (["experiment", "internet-prior", "--workers", "0"], "experiment internet-prior", "--workers: 0"),
    (["experiment", "internet-prior", "--configs", "nope", "--out", "x"], "experiment", "--configs nope"),
    (["experiment", "internet-prior", "--stage", "eval", "--out", "x"], "experiment", "not trained yet"),
    (["experiment", "internet-prior", "--out", "a-file/x"], "experiment", "a-file is a file"),
    (
        ["rollout", "--model", "m", "--image", "i.png", "--actions", "x", "--out", "o.mp4", "--fps", "inf"],
        "rollout",
        "--fps: inf",
    ),  # fmt: skip
    (["eval", "--pred", "p", "--gt", "g", "--fov-deg", "0"], "eval", "--fov-deg: 0"),
    (["eval", "--pred", "p", "--gt", "g", "--device", "gpu0"], "eval", "--device: 'gpu0'"),
]


@pytest.mark.parametrize("argv, command, needle", BAD_ARGV, ids=[" ".join(a[0]) for a in BAD_ARGV])
def test_bad_arguments_are_one_line_and_write_nothing(argv, command, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("mine")
    assert main(argv) == 2
    line = _one_error_line(capsys, command)
    assert needle in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing created
    assert (tmp_path / "a-file").read_text() == "mine"


def test_argument_errors_come_before_torch_is_imported(tmp_path):
    """Wrong arguments are reported without importing torch (seconds saved on every typo)."""
    cases = [
        ["rollout", "--model", str(tmp_path / "nonexistent"), "--image", "i.png", "--actions", "x",
         "--out", str(tmp_path / "o.mp4")],
        ["demo", "--model", str(tmp_path / "nonexistent")],
        ["eval", "--pred", str(tmp_path / "p"), "--gt", str(tmp_path / "g")],
        ["sim", "--state", str(tmp_path / "s.npz"), "--actions", "a.npz", "--out", str(tmp_path / "o")],
        ["sim", "build-state", "--episode", str(tmp_path / "ep"), "--out", str(tmp_path / "s.npz")],
        ["sim", "train-observe", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "m")],
        ["experiment", "internet-prior", "--stage", "finetune", "--out", str(tmp_path / "x")],
    ]  # fmt: skip
    code = (
        "import json, sys\nfrom egoworld.cli import main\n"
        f"codes = [main(a) for a in {cases!r}]\n"
        "print(json.dumps([codes, 'torch' in sys.modules]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    codes, torch_loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert codes == [2] * len(cases), proc.stderr
    assert not torch_loaded
    assert len(proc.stderr.strip().splitlines()) == len(cases) and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())


def _raising(exc: BaseException):
    def run(args):
        raise exc

    return run


@pytest.mark.parametrize(
    "exc, expected",
    [
        (PermissionError(13, "Permission denied", "/ro/out.mp4"), "Permission denied: /ro/out.mp4"),
        (IsADirectoryError(21, "Is a directory", "/x/out.mp4"), "Is a directory: /x/out.mp4"),
        (NotADirectoryError(20, "Not a directory", "/file/x"), "Not a directory: /file/x"),
        (OSError(28, "No space left on device"), "No space left on device"),
        (FileNotFoundError(2, "No such file or directory", "a.txt"), "No such file or directory: a.txt"),
        (KeyError("K"), "missing entry 'K'"),
        (KeyError("no object 'cup' in the state"), "no object 'cup' in the state"),
    ],
)
def test_os_and_key_errors_are_one_readable_line(exc, expected, monkeypatch, capsys):
    import egoworld.commands.demo as demo_cmd

    monkeypatch.setattr(demo_cmd, "run", _raising(exc))
    assert main(["demo"]) == 2
    line = _one_error_line(capsys, "demo")
    assert line == f"egoworld demo: error: {expected}" or line.startswith(
        f"egoworld demo: error: {expected} "
    )


def test_keyboard_interrupt_is_kept(monkeypatch, capsys):
    import egoworld.commands.demo as demo_cmd

    monkeypatch.setattr(demo_cmd, "run", _raising(KeyboardInterrupt()))
    assert main(["demo"]) == 130
    assert capsys.readouterr().err.strip() == "egoworld demo: interrupted"


def test_a_read_only_output_folder_is_one_line(tmp_path, capsys):
    """A writer that cannot create its output (here: a file where a folder must be) says so in one line."""
    (tmp_path / "file").write_text("x")
    argv = ["worlds", "generate", "--task", "nav", "--out", str(tmp_path / "file" / "w"), "--no-progress"]
    assert main([*argv, "--episodes", "1", "--frames", "2", "--size", "16"]) == 2
    line = _one_error_line(capsys, "worlds")
    assert "file" in line
