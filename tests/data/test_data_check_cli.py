import json
import os
import pickle

import numpy as np
import pytest
from data_builders import write_lerobot, write_recon_h5

from egoworld.actions.normalization import ActionNormalizer
from egoworld.cli import main
from egoworld.data.check import check_dataset, detect_format


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_detects_formats(tmp_path, nwm_root, onex_root):
    assert detect_format(nwm_root) == "nwm"
    assert detect_format(onex_root) == "onex"
    assert detect_format(write_lerobot(tmp_path / "lr", [3])) == "lerobot"
    assert detect_format(write_recon_h5(tmp_path / "raw" / "a.hdf5", 3).parent) == "recon_h5"
    with pytest.raises(ValueError, match="not a known dataset layout"):
        detect_format(tmp_path / "raw" / "..")


def test_clean_datasets_pass(tmp_path, nwm_root, onex_root, capsys):
    for root in (nwm_root, onex_root, write_lerobot(tmp_path / "lr", [4, 3], version="v3.0")):
        report = check_dataset(root)
        assert report.ok, report.lines()
    assert main(["data", "check", str(nwm_root)]) == 0
    out = capsys.readouterr().out
    assert "episodes: 2" in out and "frames: 32" in out and "problems: 0" in out


def test_nwm_check_lists_every_problem(tmp_path, nwm_root, capsys):
    a, b = nwm_root / "traj_a", nwm_root / "traj_b"
    (a / "4.jpg").unlink()  # missing frame
    (a / "7.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # corrupt JPEG
    (b / "12.jpg").write_bytes((b / "0.jpg").read_bytes())  # 13 images, 12 positions
    marker = tmp_path / "pwned"
    evil = nwm_root / "traj_evil"
    evil.mkdir()
    (evil / "0.jpg").write_bytes((b / "0.jpg").read_bytes())
    (evil / "traj_data.pkl").write_bytes(pickle.dumps({"position": _RunsCode(marker), "yaw": [0.0]}))
    empty = nwm_root / "traj_empty"
    empty.mkdir()
    (empty / "traj_data.pkl").write_bytes(pickle.dumps({"position": np.zeros((0, 2)), "yaw": np.zeros(0)}))
    report = check_dataset(nwm_root)
    text = "\n".join(map(str, report.problems))
    assert "traj_a: missing frames 4.jpg (1 of 20)" in text
    assert "traj_a/7.jpg: corrupt or unreadable JPEG" in text
    assert "traj_b: 13 images but 12 positions" in text
    assert "traj_evil/traj_data.pkl: pickle refers to" in text and "system" in text
    assert "traj_empty/traj_data.pkl: empty trajectory" in text
    assert len(report.problems) == 5
    assert not marker.exists()
    assert main(["data", "check", str(nwm_root), "--format", "nwm"]) == 1
    out = capsys.readouterr().out
    assert "problems: 5" in out and "missing frames" in out


def test_recon_and_lerobot_problems(tmp_path):
    write_recon_h5(tmp_path / "raw" / "a.hdf5", 5, n_images=4)
    (tmp_path / "raw" / "b.hdf5").write_bytes(b"garbage")
    text = "\n".join(map(str, check_dataset(tmp_path / "raw").problems))
    assert "a.hdf5: 4 images but 5 positions" in text and "b.hdf5: not a readable HDF5" in text
    root = write_lerobot(tmp_path / "lr", [4, 3], version="v2.1")
    video = root / "videos" / "chunk-000" / "observation.images.front" / "episode_000001.mp4"
    video.write_bytes(video.read_bytes()[:200])
    problems = check_dataset(root).problems
    assert len(problems) == 1 and problems[0].path == video


def test_stats_and_convert_commands(tmp_path, nwm_root, onex_root, capsys):
    out = tmp_path / "stats.json"
    assert main(["data", "stats", str(nwm_root), "--out", str(out)]) == 0
    norm = ActionNormalizer.load(out)
    assert norm.action_dim == 3 and norm.count == 19 + 11 and norm.meta["spacing"] == 0.25
    assert (
        main(["data", "stats", str(onex_root), "--out", str(tmp_path / "1x.json"), "--mode", "minmax"]) == 0
    )
    d = json.loads((tmp_path / "1x.json").read_text())
    assert len(d["min"]) == 25 and d["count"] == 5 + 3  # 36 -> 6 frames, 24 -> 4 frames at 5 FPS
    write_recon_h5(tmp_path / "raw" / "a.hdf5", 5)
    assert main(["data", "convert", str(tmp_path / "raw"), str(tmp_path / "nwm")]) == 0
    assert (tmp_path / "nwm" / "a" / "4.jpg").is_file()
    capsys.readouterr()
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("egoworld data: error: dataset path not found") and err.count("\n") == 1
