"""Atomic writes never leave half-written output, never replace a folder that is not ours, give outputs
the umask's permissions, and outputs never overwrite inputs."""

from __future__ import annotations

import os
import stat

import pytest

from egoworld.io_utils import atomic_dir, atomic_path, check_outputs_distinct, current_umask


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_only_its_own_folders(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target, replaces="marker.json") as tmp:
        (tmp / "marker.json").write_text("{}")
        (tmp / "a").write_text("1")
    with atomic_dir(target, replaces="marker.json") as tmp:  # ours: replaced whole
        (tmp / "marker.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["marker.json"]

    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="is not a folder holding marker.json; nothing was changed"):
        with atomic_dir(precious, replaces="marker.json"):
            pass
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "model"]


def test_failed_block_keeps_the_old_folder(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target, replaces="m") as tmp:
        (tmp / "m").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target, replaces="m") as tmp:
            (tmp / "m").write_text("new")
            raise RuntimeError("crash")
    assert (target / "m").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# permissions ----------------------------------------------------------------------------------


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_outputs_get_the_permissions_the_umask_gives(tmp_path, umask, mask, file_mode, dir_mode):
    """mkstemp/mkdtemp make 0600/0700 entries; staged outputs get what a plain open()/mkdir() would."""
    umask(mask)
    with atomic_path(tmp_path / "stats.json") as tmp:
        tmp.write_text("{}")
    with atomic_dir(tmp_path / "final") as tmp:
        (tmp / "denoiser").mkdir()
        (tmp / "config.json").write_text("{}")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE((tmp_path / "stats.json").stat().st_mode) == file_mode
    assert stat.S_IMODE(plain.stat().st_mode) == file_mode  # the reference: what the umask gives
    assert stat.S_IMODE((tmp_path / "final").stat().st_mode) == dir_mode
    assert stat.S_IMODE((tmp_path / "final" / "denoiser").stat().st_mode) == dir_mode
    assert current_umask() == mask


def test_atomic_path_refuses_a_folder(tmp_path):
    (tmp_path / "out.mp4").mkdir()
    with pytest.raises(IsADirectoryError, match="out.mp4 is a folder"):
        with atomic_path(tmp_path / "out.mp4"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


# outputs that are inputs ----------------------------------------------------------------------


def test_check_outputs_distinct(tmp_path):
    gt = tmp_path / "g.mp4"
    gt.write_bytes(b"ground truth")
    (tmp_path / "link.mp4").symlink_to(gt)
    os.link(gt, tmp_path / "hard.mp4")
    episode = tmp_path / "episode"
    (episode / "gt").mkdir(parents=True)
    (episode / "gt" / "depth.npy").write_bytes(b"depth")
    report = tmp_path / "report"
    (report / "pred").mkdir(parents=True)

    def refused(outputs, inputs, match, **kw):
        with pytest.raises(ValueError, match=match):
            check_outputs_distinct(outputs, inputs, **kw)

    refused({"--out": gt}, {"--gt": gt}, "--out .*g.mp4 is the input --gt")
    refused({"--out": tmp_path / "sub" / ".." / "g.mp4"}, {"--gt": gt}, "is the input")  # resolved
    refused({"--out": tmp_path / "link.mp4"}, {"--gt": gt}, "is the input")  # a symlink to it
    refused({"--out": tmp_path / "hard.mp4"}, {"--gt": gt}, "is the input")  # a hard link (samefile)
    refused({"--out": episode / "gt" / "depth.npy"}, {"--episode": episode}, "is a file of the input")
    refused(
        {"--out": report}, {"--pred": report / "pred"}, "holds the input --pred", replaced_folders=["--out"]
    )
    refused({"--out": tmp_path / "a.npz", "--actions-out": tmp_path / "a.npz"}, {}, "are the same path")
    refused(
        {"--frames-dir": tmp_path / "f", "--out": tmp_path / "f" / "v.mp4"},
        {},
        "lies inside --frames-dir",
        replaced_folders=["--frames-dir"],
    )
    # allowed: new files beside or inside inputs, None entries, a report folder beside the videos
    check_outputs_distinct({"--out": tmp_path / "pred.mp4", "--gif": None}, {"--gt": gt, "--image": None})
    check_outputs_distinct({"--out": episode / "state.npz"}, {"--episode": episode})
    check_outputs_distinct(
        {"--out": tmp_path / "r2"}, {"--pred": report / "pred"}, replaced_folders=["--out"]
    )
    assert gt.read_bytes() == b"ground truth"
