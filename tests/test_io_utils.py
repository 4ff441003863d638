"""Atomic writes never leave half-written output and never replace a folder that is not ours."""

from __future__ import annotations

import pytest

from egoworld.io_utils import atomic_dir, atomic_path


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
