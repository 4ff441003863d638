"""A model trained on cumulative poses takes per-step actions and feeds each chunk what training fed it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egoworld.actions.normalization import ActionNormalizer
from egoworld.data.nwm import NWMDataset
from egoworld.model_config import WorldModelConfig
from egoworld.world_model import WorldModel
from tests.data.data_builders import write_nwm_traj

F = 4  # frames per chunk


@pytest.fixture(scope="module")
def walk_root(tmp_path_factory):
    rng = np.random.default_rng(3)
    yaw = np.cumsum(rng.uniform(-0.6, 0.6, 14)) + 2.5  # turns that cross +-pi
    position = np.cumsum(rng.normal(0, 0.2, (14, 2)), axis=0)
    root = tmp_path_factory.mktemp("walk") / "recon"
    write_nwm_traj(root / "a", position, (yaw + np.pi) % (2 * np.pi) - np.pi)
    return root


def model_for(root, mode: str) -> tuple[WorldModel, NWMDataset]:
    raw = NWMDataset(root, context=1, horizon=F - 1, action_mode=mode, resolution=32)
    stats = ActionNormalizer.fit(
        raw.all_actions(), meta={"dataset": "recon", "spacing": 0.25, "action_mode": mode}
    )
    config = WorldModelConfig(family="svd", preset="tiny", num_frames=F, height=32, width=32, hidden_dim=16)
    model = WorldModel.build(config, stats).eval()
    ds = NWMDataset(
        root, context=1, horizon=F - 1, action_mode=mode, resolution=32, normalizer=stats, output="clip"
    )
    return model, ds


@pytest.mark.parametrize("mode", ["delta", "cumulative"])
def test_each_chunk_gets_the_actions_its_training_clip_held(walk_root, mode):
    model, ds = model_for(walk_root, mode)
    assert model.action_mode == mode
    # per-step actions of the whole walk (what scripts, `egoworld play` and the datasets' delta mode give)
    steps = NWMDataset(walk_root, context=1, horizon=12, resolution=32, output="clip").get_clip(0).actions
    chunks = model.chunk_actions(steps[: 1 + 3 * (F - 1)])  # 3 chunks
    assert len(chunks) == 3
    for k, chunk in enumerate(chunks):
        # the training clip that starts where chunk k starts (windows of stride 1)
        clip = ds.get_clip(k * (F - 1))
        np.testing.assert_allclose(chunk.numpy(), clip.actions, atol=1e-4)
        assert torch.all(chunk[0] == 0)


def test_a_cumulative_model_refuses_normalized_actions_over_several_chunks(walk_root):
    model, ds = model_for(walk_root, "cumulative")
    one = ds.get_clip(0).actions
    np.testing.assert_array_equal(model.chunk_actions(one, normalized=True)[0].numpy(), one)
    with pytest.raises(ValueError, match="one chunk"):
        model.chunk_actions(np.zeros((2 * F, 3), np.float32), normalized=True)


def test_the_mirrored_loss_gap_and_embedding_split_are_zero_for_a_model_that_ignores_actions(walk_root):
    from egoworld.experiments.action_following import action_embedding_split, action_loss_gap
    from egoworld.experiments.evaluation import EvalClip

    model, ds = model_for(walk_root, "cumulative")
    raw = NWMDataset(walk_root, context=1, horizon=F - 1, resolution=32, output="clip")
    clips = [EvalClip(f"c{i}", c.frames, c.actions, np.zeros((F, 0, 32, 32), bool), [], F)
             for i, c in enumerate(raw.get_clip(j) for j in (0, 5))]  # fmt: skip
    fresh = action_loss_gap(model, clips, draws=2)  # zero-initialised action encoder: exactly the base model
    assert fresh["gap"] == 0.0 and fresh["true"] > 0
    assert action_embedding_split(model, clips) == {"norm": 0.0, "split": 0.0, "ratio": 0.0}
    proj_out = model.denoiser.action_encoder.proj_out
    with torch.no_grad():  # an action-independent output only: a norm, no split
        torch.nn.init.normal_(proj_out.bias, std=1.0)
    offset = action_embedding_split(model, clips)
    assert offset["norm"] == pytest.approx(float(proj_out.bias.detach().norm()), rel=1e-5)
    assert offset["split"] == 0.0
    with torch.no_grad():
        torch.nn.init.normal_(proj_out.weight, std=1.0)
    assert action_loss_gap(model, clips, draws=2)["gap"] != 0.0
    assert action_embedding_split(model, clips)["split"] > 0


def test_norm_groups_regroup_the_unet_and_travel_with_the_model(tmp_path):
    import dataclasses

    config = WorldModelConfig(family="svd", preset="small", codec="pixel", use_image_encoder=False,
                              num_frames=3, height=32, width=32, hidden_dim=16)  # fmt: skip
    plain = WorldModel.build(config).eval()
    norms = [m for m in plain.denoiser.base.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert {m.num_groups for m in norms} == {32}  # diffusers' fixed grouping
    regrouped = WorldModel(dataclasses.replace(config, norm_groups=8), plain.denoiser, plain.codec)
    assert {m.num_groups for m in norms} == {8}  # the same modules: weights are shared, grouping changed
    image = np.full((32, 32, 3), 90, np.uint8)
    actions = np.zeros((3, 3), np.float32)
    out8 = regrouped.rollout(image, actions, num_inference_steps=1)
    regrouped.save_pretrained(tmp_path / "m")
    loaded = WorldModel.from_pretrained(tmp_path / "m")
    assert loaded.config.norm_groups == 8
    assert {m.num_groups for m in loaded.denoiser.base.modules() if isinstance(m, torch.nn.GroupNorm)} == {8}
    np.testing.assert_array_equal(loaded.rollout(image, actions, num_inference_steps=1), out8)
    # null gives the grouping back
    WorldModel(config, plain.denoiser, plain.codec)
    assert {m.num_groups for m in norms} == {32}
    with pytest.raises(ValueError, match="norm_groups=7: .* not a multiple of 7"):
        WorldModel(dataclasses.replace(config, norm_groups=7), plain.denoiser, plain.codec)
    with pytest.raises(ValueError, match="for family 'svd'"):
        WorldModelConfig(family="wan", num_frames=5, norm_groups=8).validate()
