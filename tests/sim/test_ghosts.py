"""The ghost check: no backend fuses an object's (or the hand's) surface into the static TSDF.

A hand (a small block resting on the box) carries the box from OLD to NEW half-way through an
8-frame clip of the ray-cast tabletop (tests/sim/conftest.py, 1 cm voxels). S starts with the box
as an object point set. Each backend reconstructs the clip and the loop's update folds it in
(`update_from_reconstruction`, the code path of `EgoSim.step`); then, if the backend left the box
where it was (the state-render backend never moves objects, the estimated one without SAM 2 cannot
tell which object moved), the box is moved as the next interaction would. After that, the static
TSDF must have no surface where the box (or the hand on it) was, nor where it went: surface points
inside those columns, from 2 voxels above the table to the top of the hand, are ghosts.

Not vacuous: the previous state-render update (the state's rendered depth with its objects fused,
no object mask) leaves the old box in the static TSDF, and estimated depth fused without the
change mask leaves the box's new place there; both are counted here too.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d
import open3d.core as o3c
import pytest

from egoworld.sim.backends import (
    ClipRequest,
    EstimatedBackend,
    GroundTruthBackend,
    StateRenderBackend,
    update_from_reconstruction,
)
from egoworld.sim.loop import TabletopEpisode, state_from_frames
from egoworld.sim.render import render_state
from egoworld.sim.update import update_state

from .conftest import BOX, H, Tabletop, W, camera_ring

HAND = 3  # geometry id of the hand block (added after table, wall and box)
OLD, NEW = (0.1, 0.05), (-0.15, 0.0)
SIZE, HAND_H, VOXEL = 0.1, 0.04, 0.01
T = 8


class HandScene(Tabletop):
    """The conftest tabletop with a 6 × 6 × 4 cm hand block resting on the box's top."""

    def __init__(self, box_xy, with_hand: bool = True):
        super().__init__(box_xy=box_xy, box_size=SIZE)
        if with_hand:
            hand = o3d.t.geometry.TriangleMesh.create_box(0.06, 0.06, HAND_H)
            hand.translate(o3c.Tensor([box_xy[0] - 0.03, box_xy[1] - 0.03, SIZE]))
            self.scene.add_triangles(hand)

    def hand_keypoints(self) -> np.ndarray:
        """21 OpenPose keypoints of a flat hand lying in the block, fingers along +x: [21, 3]."""
        x0, y0, z = self.box_xy[0], self.box_xy[1], SIZE + HAND_H / 2
        kp = np.zeros((21, 3))
        kp[0] = [x0 - 0.025, y0, z]  # wrist
        for f, y in enumerate(np.linspace(-0.022, 0.022, 5)):  # thumb .. pinky
            for j in range(4):
                kp[1 + 4 * f + j] = [x0 - 0.005 + 0.009 * j, y0 + y, z]
        return kp


def _box_pose(xy) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, 3] = [xy[0], xy[1], SIZE / 2]
    return pose


def _carry(state) -> None:
    """Move the box object by NEW − OLD (the interaction that follows)."""
    pose = state.objects[BOX].pose.copy()
    pose[:2, 3] += np.subtract(NEW, OLD)
    state.move_object(BOX, pose)


def ghosts(state, xy) -> int:
    """Static surface points in the column of the box (and the hand on it) at `xy`."""
    xyz, _ = state.surface_points()
    half = SIZE / 2 + VOXEL
    inside = (np.abs(xyz[:, 0] - xy[0]) < half) & (np.abs(xyz[:, 1] - xy[1]) < half)
    inside &= (xyz[:, 2] > 2 * VOXEL) & (xyz[:, 2] < SIZE + HAND_H + VOXEL)
    return int(inside.sum())


@pytest.fixture(scope="module")
def world(K):
    return make_world(K)


def make_world(K):
    """S (box as object BOX, fused without the hand) and the clip as a synthetic episode."""
    from egoworld.sim.state import StateConfig

    empty_old = HandScene(OLD, with_hand=False)
    ring = camera_ring(5)
    views = [empty_old.rgbd(K, p) for p in ring]
    state = state_from_frames(
        np.stack([v[0] for v in views]),
        np.stack([v[1] for v in views]),
        np.stack([v[2] for v in views]),
        K,
        ring,
        object_ids=[BOX],
        config=StateConfig(voxel_size=VOXEL),
    )
    poses = camera_ring(T, span_deg=30)
    scenes = [HandScene(OLD if i < T // 2 else NEW) for i in range(T)]
    rgb, depth, ids = (np.stack(a) for a in zip(*[s.rgbd(K, p) for s, p in zip(scenes, poses)]))
    keypoints = np.stack([s.hand_keypoints() for s in scenes])  # [T, 21, 3]
    object_poses = np.zeros((T, 1, 7))
    object_poses[:, 0, :3] = [_box_pose(s.box_xy)[:3, 3] for s in scenes]
    object_poses[:, 0, 3] = 1.0
    episode = TabletopEpisode(
        rgb=rgb,
        depth=depth,
        instances=ids,
        K=K,
        cam_to_world=poses,
        keypoints_3d=keypoints,
        object_poses=object_poses,
        movable_ids=[BOX],
        effector_id=HAND,
        effector="hand",
    )
    return state, episode


def _request(state, episode, method) -> ClipRequest:
    K, poses = episode.K, episode.cam_to_world
    rendering = render_state(state, K, poses, H, W, method=method)
    skeleton = np.zeros_like(episode.rgb)
    return ClipRequest(
        np.arange(T), episode.rgb, poses, K, rendering, skeleton, episode.keypoints_3d[:, None], state, method
    )


class DisparityOf:
    """Relative disparity of the clip's true depth, with a different unknown scale and shift per
    frame (what a relative monocular model predicts at best): the geometry under test is the
    alignment, odometry, masks and fusion, not the depth network (tests/sim/test_estimated_update.py
    runs a real, tiny Depth Anything through the same backend)."""

    def __init__(self, depth):
        self.depth, self.rng = depth, np.random.default_rng(0)

    def __call__(self, frames):
        a = self.rng.uniform(0.5, 3.0, len(frames))[:, None, None]
        b = self.rng.uniform(-0.3, 0.3, len(frames))[:, None, None]
        with np.errstate(divide="ignore"):
            return np.where(self.depth > 0, (1.0 / self.depth - b) / a, np.nan)


def _backends(episode):
    return {
        "ground truth": lambda: GroundTruthBackend(episode),
        "state render": lambda: StateRenderBackend(),
        "estimated": lambda: EstimatedBackend(
            depth_estimator=DisparityOf(episode.depth), depth_kind="disparity"
        ),
    }


@pytest.mark.parametrize("method", ["raycast", "splat"])
@pytest.mark.parametrize("name", ["ground truth", "state render", "estimated"])
def test_no_backend_fuses_objects_into_the_static_scene(world, name, method):
    state, episode = world
    assert ghosts(state, OLD) == 0 and ghosts(state, NEW) == 0  # S itself is clean
    request = _request(state, episode, method)
    rec = _backends(episode)[name]()(request)
    new, report = update_from_reconstruction(state, request, rec)
    assert new.num_blocks >= state.num_blocks  # the clip was fused
    if name == "ground truth":  # the update itself carried the box
        np.testing.assert_allclose(report.moved[BOX][:2, 3], np.subtract(NEW, OLD), atol=0.02)
    else:
        assert not report.moved  # no backend here knows which object moved: the next step moves it
        _carry(new)
    assert ghosts(new, OLD) == 0, f"{name}/{method}: surface left where the box was"
    assert ghosts(new, NEW) == 0, f"{name}/{method}: the box's new place fused as static"
    if name == "estimated":
        assert report.truncation_voxels == 8.0  # estimated depth: the wider truncation


def test_the_ghost_check_sees_the_old_failures(world):
    """The previous updates leave ghosts this test counts: state-render depth with the objects fused
    and nothing masked (the old place), estimated depth fused without the change mask (the new)."""
    state, episode = world
    request = _request(state, episode, "raycast")
    legacy = {
        "rgb": episode.rgb,
        "depth": request.rendering.depth,  # the render with the state's objects
        "K": episode.K,
        "poses": episode.cam_to_world,
    }
    old_way = update_state(state, legacy, align=False)
    _carry(old_way)
    assert ghosts(old_way, OLD) > 20
    rec = EstimatedBackend(depth_estimator=DisparityOf(episode.depth), depth_kind="disparity")(request)
    unmasked = dict(legacy, depth=rec.depth, poses=rec.poses, state_poses=episode.cam_to_world)
    unmasked["object_masks"] = rec.object_masks  # the box where the state had it, but no change mask
    assert ghosts(update_state(state, unmasked), NEW) > 20
