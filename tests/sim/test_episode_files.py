"""A damaged tabletop episode is one clear line naming the file, never a traceback or a pickle."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from egoworld.sim.loop import TabletopEpisode


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    from egoworld.worlds.tabletop import run_episode

    root = tmp_path_factory.mktemp("tabletop")
    run_episode(root, seed=5, index=0, frames=5, size=32)
    return root / "episode_00000"


def _damage_png(ep):
    (sorted((ep / "frames").glob("*.png"))[2]).write_bytes(b"\x89PNG\r\n\x1a\n garbage")


def _drop_k(ep):
    cams = json.loads((ep / "gt" / "cameras.json").read_text())
    del cams["K"]
    (ep / "gt" / "cameras.json").write_text(json.dumps(cams))


def _truncate_depth(ep):
    path = ep / "gt" / "depth.npy"
    path.write_bytes(path.read_bytes()[:100])


def _pickled_keypoints(ep):
    np.save(ep / "keypoints_3d.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)


def _short_depth(ep):
    np.save(ep / "gt" / "depth.npy", np.zeros((2, 32, 32), np.float32))


def _no_frames(ep):
    shutil.rmtree(ep / "frames")
    (ep / "frames").mkdir()


@pytest.mark.parametrize(
    "damage, message",
    [
        (_damage_png, r"00002\.png: corrupt or unreadable PNG"),
        (_drop_k, r"cameras\.json lacks \['K'\]"),
        (_truncate_depth, r"depth\.npy: not a readable \.npy array"),
        (_pickled_keypoints, r"keypoints_3d\.npy: not a readable \.npy array"),
        (_short_depth, r"depth\.npy has shape \(2, 32, 32\); expected \(5, 32, 32\)"),
        (_no_frames, "holds no PNG frames"),
    ],
)
def test_damaged_episode_is_one_clear_error(pristine, tmp_path, damage, message):
    ep = tmp_path / "ep"
    shutil.copytree(pristine, ep)
    damage(ep)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        TabletopEpisode.load(ep)


def test_pristine_episode_loads(pristine):
    ep = TabletopEpisode.load(pristine)
    assert len(ep) == 5 and ep.depth.shape == (5, 32, 32)
