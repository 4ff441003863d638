"""Where a run's weights come from: a diffusers pipeline folder, an egoworld folder, or random."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from egoworld.model_init import initial_model
from egoworld.train import train
from egoworld.train_config import load_config
from egoworld.world_model import WorldModel, WorldModelConfig
from tests.parity.test_svd_parity import tiny_svd_pipeline

from .conftest import ROOT


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("svd-pipe") / "pipeline"
    tiny_svd_pipeline().save_pretrained(folder, safe_serialization=True)
    return folder


def svd_cfg(**kw) -> WorldModelConfig:
    base = dict(family="svd", action_dim=3, hidden_dim=32, num_frames=3, height=32, width=32)
    return WorldModelConfig(**{**base, **kw})


def test_pipeline_folder_gives_the_pipeline_weights_and_the_config_fields(pipeline_dir):
    cfg = svd_cfg(guidance=2.0, guidance_schedule="constant", fps=7, vae_encode_chunk=2)
    wm = initial_model(cfg, str(pipeline_dir), None, allow_random_init=False)
    ref = tiny_svd_pipeline().unet.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in wm.denoiser.base.state_dict().items())
    assert wm.config.extra["pipeline"] == "StableVideoDiffusionPipeline" and wm.config.preset == "imported"
    assert (wm.config.guidance, wm.config.guidance_schedule, wm.config.fps) == (2.0, "constant", 7)
    assert wm.codec.encode_chunk == 2


def test_conflicts_with_the_imported_model_are_errors(pipeline_dir, tmp_path):
    with pytest.raises(
        ValueError, match="StableVideoDiffusionPipeline \\(family 'svd'\\).*model.family='cosmos'"
    ):
        initial_model(
            svd_cfg(family="cosmos", num_frames=5), str(pipeline_dir), None, allow_random_init=False
        )
    torch.manual_seed(0)
    saved = tmp_path / "wm"
    WorldModel.build(svd_cfg(num_frames=4)).save_pretrained(saved)
    with pytest.raises(ValueError, match=r"model.hidden_dim=64 \(the model has 32\)"):
        initial_model(svd_cfg(hidden_dim=64), str(saved), None, allow_random_init=False)
    # fields that do not define the network are honoured, the centred action path among them
    wm = initial_model(
        svd_cfg(num_frames=6, guidance=1.5, action_center=True), str(saved), None, allow_random_init=False
    )
    assert (wm.config.num_frames, wm.config.guidance) == (6, 1.5)
    assert wm.config.action_center and wm.denoiser.action_encoder.center
    wm.save_pretrained(tmp_path / "centred")  # and it travels with the model
    assert WorldModel.from_pretrained(tmp_path / "centred").denoiser.action_encoder.center
    assert not WorldModel.from_pretrained(saved).denoiser.action_encoder.center
    with pytest.raises(ValueError, match="holds neither model_index.json"):
        initial_model(svd_cfg(), str(tmp_path), None, allow_random_init=False)


def test_fine_tuning_with_other_action_statistics_is_a_warning(tmp_path, caplog):
    from egoworld.actions.normalization import ActionNormalizer

    actions = np.random.default_rng(0).normal(size=(50, 3))
    trained = ActionNormalizer.fit([actions])
    saved = tmp_path / "wm"
    WorldModel.build(svd_cfg(num_frames=4), trained).save_pretrained(saved)
    with caplog.at_level(logging.WARNING, logger="egoworld.model_init"):
        initial_model(svd_cfg(), str(saved), ActionNormalizer.fit([actions]), allow_random_init=False)
        assert not caplog.records  # the same statistics: the actions keep their scale
        initial_model(svd_cfg(), str(saved), ActionNormalizer.fit([2 * actions]), allow_random_init=False)
    assert "action statistics of the data (meanstd mean" in caplog.text and "on another scale" in caplog.text
    # a mixture: each dataset against the model's statistics of the same name
    a, b = ActionNormalizer.fit([actions]), ActionNormalizer.fit([3 * actions])
    WorldModel.build(svd_cfg(num_frames=4), ActionNormalizer.table({"a": a, "b": b})).save_pretrained(saved)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="egoworld.model_init"):
        table = ActionNormalizer.table({"a": a, "b": ActionNormalizer.fit([5 * actions])})
        initial_model(svd_cfg(), str(saved), table, allow_random_init=False)
    assert len(caplog.records) == 1 and "the action statistics of b (" in caplog.text


def test_real_size_preset_needs_weights_or_an_explicit_random_init():
    cfg = svd_cfg(preset="svd-xt", height=512, width=512)
    with pytest.raises(ValueError, match="real-size model and init_from is not set.*--allow-random-init"):
        initial_model(cfg, None, None, allow_random_init=False)
    assert initial_model(svd_cfg(), None, None, allow_random_init=False).config.preset == "tiny"


def test_train_from_a_pipeline_folder_with_compile(pipeline_dir, nav_data, tmp_path):
    cfg = load_config(
        ROOT / "configs" / "tiny-svd.yaml",
        [
            f"--run-dir={tmp_path / 'run'}",
            "--max-steps=2",
            "--checkpoint-every=2",
            f"--init-from={pipeline_dir}",
            "--compile=eager",  # the wiring of the switch; inductor needs minutes to compile on a CPU
            "--model.num-frames=3",
            "--model.hidden-dim=32",
            "--data.format=nwm",
            f"--data.path={nav_data}",
        ],
    )
    final = train(cfg)
    wm = WorldModel.from_pretrained(final)
    assert wm.config.extra["pipeline"] == "StableVideoDiffusionPipeline"
    assert dataclasses.asdict(wm.config)["num_frames"] == 3
