"""`egoworld data`: outputs never land on inputs, arguments are checked first, help has examples,
and worlds this project generates are read with the spacing they record."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from data_builders import write_recon_h5

from egoworld.actions.normalization import ActionNormalizer
from egoworld.cli import main


def _one_error_line(capsys, needle: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err and needle in err, err


def test_stats_out_never_overwrites_an_input(nwm_root, tmp_path, capsys):
    pkl = nwm_root / "traj_a" / "traj_data.pkl"
    before = pkl.read_bytes()
    for out in (pkl, nwm_root / "stats.json", nwm_root / "traj_b" / "new" / "s.json"):
        assert main(["data", "stats", str(nwm_root), "--out", str(out)]) == 2
        _one_error_line(capsys, "is the input")
    assert pkl.read_bytes() == before and not (nwm_root / "stats.json").exists()
    link = tmp_path / "link.pkl"
    link.symlink_to(pkl)  # another name for an input file
    assert main(["data", "stats", str(pkl.parent), "--out", str(link)]) == 2
    _one_error_line(capsys, "is the input")
    raw = write_recon_h5(tmp_path / "raw" / "a.hdf5", 5)
    h5 = raw.read_bytes()
    assert main(["data", "stats", str(raw), "--out", str(raw)]) == 2
    _one_error_line(capsys, "is the input")
    assert raw.read_bytes() == h5
    assert main(["data", "stats", str(raw), "--out", str(tmp_path / "ok.json")]) == 0


def test_convert_never_writes_into_its_input(tmp_path, capsys):
    raw = tmp_path / "raw"
    a = write_recon_h5(raw / "a.hdf5", 5)
    listing, data = sorted(os.listdir(raw)), a.read_bytes()
    for args in (
        ["data", "convert", str(raw), str(raw / "nwm")],
        ["data", "convert", str(a), "--out", str(a)],
    ):
        assert main(args) == 2
        _one_error_line(capsys, "is the input")
    assert sorted(os.listdir(raw)) == listing and a.read_bytes() == data
    assert main(["data", "convert", str(raw), str(tmp_path / "x"), "--out", str(tmp_path / "y")]) == 2
    _one_error_line(capsys, "give the output folder once")
    assert main(["data", "convert", str(raw), "--out", str(tmp_path / "nwm")]) == 0
    assert (tmp_path / "nwm" / "a" / "traj_data.pkl").is_file()


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--frame-step", "0"], "--frame-step: 0; expected an integer >= 1"),
        (["--fps", "-5"], "--fps: -5; expected a finite number > 0"),
        (["--spacing", "nan"], "--spacing: nan; expected a finite number > 0"),
        (["--horizon", "-1"], "--horizon: -1; expected an integer >= 0"),
        (["--context", "x"], "'x' is not an integer"),
    ],
)
def test_stats_arguments_checked(nwm_root, tmp_path, capsys, extra, needle):
    assert main(["data", "stats", str(nwm_root), "--out", str(tmp_path / "s.json"), *extra]) == 2
    _one_error_line(capsys, needle)
    assert not (tmp_path / "s.json").exists()


def test_bad_arguments_refused_before_heavy_imports(tmp_path):
    code = (
        "import sys\nfrom egoworld.cli import main\n"
        f"codes = [main(['data', 'stats', {str(tmp_path / 'missing')!r}, '--out', 's.json']),\n"
        f"         main(['data', 'check', {str(tmp_path / 'missing')!r}])]\n"
        "print(codes, sorted(m for m in ('torch', 'h5py', 'av', 'pyarrow', 'cv2') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "[2, 2] []", run.stderr
    assert run.stderr.count("dataset path not found") == 2 and "Traceback" not in run.stderr


@pytest.mark.parametrize("action", [[], ["check"], ["stats"], ["convert"]])
def test_help_describes_and_shows_an_example(capsys, action):
    assert main(["data", *action, "--help"]) == 0
    out = capsys.readouterr().out
    head, _, example = out.partition("examples:\n")
    assert example.strip().startswith("egoworld data")
    assert len(head.split("\n\n")[1].strip()) > 20  # the description paragraph after the usage
    if not action:
        for sub in ("check", "stats", "convert"):
            assert any(line.split()[:1] == [sub] and len(line.split()) > 2 for line in out.splitlines())


@pytest.fixture(scope="module")
def nav_world(tmp_path_factory):
    """A tiny world written by `egoworld worlds generate --task nav` (2 episodes x 5 frames, 16 px).

    Generated in a child process, as a user would: MuJoCo's EGL context stays out of this one
    (importing diffusers after an EGL render in the same process crashes; see the report).
    """
    out = tmp_path_factory.mktemp("world") / "nav"
    cmd = [sys.executable, "-m", "egoworld", "worlds", "generate", "--task", "nav", "--out", str(out)]
    cmd += ["--episodes", "2", "--frames", "5", "--size", "16", "--seed", "3", "--no-progress"]
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    return out


def test_generated_world_spacing_read_from_its_description(nav_world, tmp_path, capsys):
    from egoworld.data.nwm import NWMDataset

    desc = json.loads((nav_world / "egoworld_world.json").read_text())
    spacing, name = desc["metric_waypoint_spacing"], desc["dataset_name"]
    assert main(["data", "check", str(nav_world)]) == 0
    assert f"spacing: {spacing} m ({name})" in capsys.readouterr().out
    out = tmp_path / "stats.json"
    assert main(["data", "stats", str(nav_world), "--out", str(out)]) == 0
    norm = ActionNormalizer.load(out)
    assert norm.meta["spacing"] == spacing and norm.meta["dataset"] == name and norm.count == 2 * 4
    ds = NWMDataset(nav_world, split="train", context=1, horizon=4, resolution=None, output="clip")
    assert ds.spacing == spacing and ds.dataset_name == name
    # the reader's actions at the recorded spacing are the generator's commanded actions
    clip = ds[0]
    commanded = np.load(nav_world / clip.episode / "gt" / "actions.npy")
    np.testing.assert_allclose(clip.actions[1:], commanded[1:5], atol=1e-4)
    # an explicit spacing still wins
    assert NWMDataset(nav_world, spacing=0.5, context=1, horizon=1).spacing == 0.5
