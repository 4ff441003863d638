"""One rollout chunk of an imported Cosmos Predict2 equals what `Cosmos2VideoToWorldPipeline` produces.

The pipeline is built from tiny components the way diffusers' Cosmos2 Video2World fast tests build them
(transformer, Wan VAE, `FlowMatchEulerDiscreteScheduler(use_karras_sigmas=True)`, a dummy safety checker;
the T5 encoder and its tokenizer are built here because nothing can be downloaded), saved with the
pipeline's `save_pretrained`, and imported with `WorldModel.from_diffusers`. A fresh action wrapper has no
effect (zero-initialised output), so the world model must reproduce the pipeline for the same image, seed
and steps, with the empty prompt and no guidance (guidance_scale=1).

The pipeline's frames pass through its safety checker as `uint8` (`(video * 255).astype(np.uint8)`, a
floor), so its float output is quantised: the test compares (a) the pipeline's latents (output_type
"latent") decoded the way the pipeline decodes them, and (b) the frames the pipeline returns, quantised
the same way on our side.

Tolerance (a): 1e-4 on frames in [-1, 1]; measured max |difference| 0.0 (bit-identical) on the 2-core
sandbox: egoworld runs the pipeline's operations in the pipeline's order. 1e-4 leaves room for float32
kernels that round differently elsewhere and is 1.3 % of one 8-bit level (2/255), so a real difference
(a wrong sigma schedule, preconditioning, condition frame, noise order or fps) fails; the built-in
sampler, for instance, lands far outside it (test_the_tolerance_separates_the_samplers).
Tolerance (b): one 8-bit level (a floor may flip where the float values straddle a level); measured 0.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import (
    Cosmos2VideoToWorldPipeline,
    CosmosTransformer3DModel,
    FlowMatchEulerDiscreteScheduler,
)
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin
from PIL import Image

from egoworld.pipeline_import import read_model_index
from egoworld.world_model import WorldModel

from .components import tiny_t5, tiny_wan_vae

TOL = 1e-4
SIZE, FRAMES, STEPS, FPS = 32, 5, 3, 16


class DummyCosmosSafetyChecker(ModelMixin, ConfigMixin):
    """What diffusers' Cosmos tests pass as the safety checker: accepts every prompt and video."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("_device_tracker", torch.zeros(1, dtype=torch.float32), persistent=False)

    def check_text_safety(self, prompt: str) -> bool:
        return True

    def check_video_safety(self, frames: np.ndarray) -> np.ndarray:
        return frames

    def to(self, device=None, dtype=None):
        return super().to(device=device, dtype=dtype)

    @property
    def device(self) -> torch.device:
        return self._device_tracker.device

    @property
    def dtype(self) -> torch.dtype:
        return self._device_tracker.dtype


def tiny_cosmos_pipeline() -> Cosmos2VideoToWorldPipeline:
    torch.manual_seed(0)
    transformer = CosmosTransformer3DModel(
        in_channels=16 + 1,
        out_channels=16,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=2,
        mlp_ratio=2,
        text_embed_dim=32,
        adaln_lora_dim=4,
        max_size=(4, 32, 32),
        patch_size=(1, 2, 2),
        rope_scale=(2.0, 1.0, 1.0),
        concat_padding_mask=True,
        extra_pos_embed_type="learnable",
    )
    vae = tiny_wan_vae()
    scheduler = FlowMatchEulerDiscreteScheduler(use_karras_sigmas=True)
    text_encoder, tokenizer = tiny_t5()
    return Cosmos2VideoToWorldPipeline(
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer.eval(),
        vae=vae.eval(),
        scheduler=scheduler,
        safety_checker=DummyCosmosSafetyChecker(),
    )


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cosmos") / "pipeline"
    tiny_cosmos_pipeline().save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def pipe(pipeline_dir):
    pipe = Cosmos2VideoToWorldPipeline.from_pretrained(
        pipeline_dir, safety_checker=DummyCosmosSafetyChecker()
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def reference(pipe, image):
    """The pipeline's chunk for the empty prompt, seed 0: (float frames, returned 8-bit frames)."""
    kw = dict(
        image=Image.fromarray(image),
        prompt="",
        height=SIZE,
        width=SIZE,
        num_frames=FRAMES,
        num_inference_steps=STEPS,
        guidance_scale=1.0,
        fps=FPS,
    )
    with torch.no_grad():
        latents = pipe(**kw, generator=torch.Generator("cpu").manual_seed(0), output_type="latent").frames
        # decoded as Cosmos2VideoToWorldPipeline.__call__ decodes, before its uint8 safety pass
        cfg = pipe.vae.config
        mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1)
        std = torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1)
        latents = latents * std / pipe.scheduler.config.sigma_data + mean
        video = pipe.vae.decode(latents, return_dict=False)[0]  # [1, 3, F, H, W]
        floats = video.clamp(-1, 1).transpose(1, 2)  # [1, F, 3, H, W] in [-1, 1]
        returned = pipe(**kw, generator=torch.Generator("cpu").manual_seed(0), output_type="pt").frames
    return floats, returned


def imported(folder, **kw) -> WorldModel:
    fields = dict(num_frames=FRAMES, height=SIZE, width=SIZE, num_inference_steps=STEPS)
    return WorldModel.from_diffusers(folder, action_dim=3, **{**fields, **kw}).eval()


def actions() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(FRAMES, 3)).astype(np.float32)  # no effect when fresh


def as_pipeline_uint8(frames: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> the pipeline's safety-checker quantisation: floor(255 * clamp(x/2 + 0.5, 0, 1))."""
    return torch.from_numpy(((frames / 2 + 0.5).clamp(0, 1).numpy() * 255).astype(np.uint8)).int()


def test_one_chunk_equals_the_pipeline(pipeline_dir, image, reference):
    floats, returned = reference
    wm = imported(pipeline_dir)
    assert wm.config.fps == FPS  # the pipeline's default fps, told to the transformer's RoPE
    ours = wm.sample_chunk(image, actions(), seed=0, normalized=True)
    assert ours.shape == floats.shape == (1, FRAMES, 3, SIZE, SIZE)
    assert (ours - floats).abs().max().item() < TOL, (ours - floats).abs().max().item()
    theirs = (returned * 255).round().int()  # the pipeline's frames are k/255 exactly
    assert (as_pipeline_uint8(ours) - theirs).abs().max().item() <= 1


def test_empty_prompt_embedding_is_the_pipelines(pipeline_dir, pipe):
    wm = imported(pipeline_dir)
    with torch.no_grad():
        theirs, _ = pipe.encode_prompt("", do_classifier_free_guidance=False, max_sequence_length=512)
    assert wm.prompt_embeds.shape == theirs.shape == (1, 512, 32)
    assert wm.prompt_embeds[0, 0].abs().sum() > 0  # the </s> token is embedded, the padding zeroed
    torch.testing.assert_close(wm.prompt_embeds, theirs, rtol=0, atol=0)


def test_saved_import_still_equals_the_pipeline(pipeline_dir, image, reference, tmp_path):
    imported(pipeline_dir).save_pretrained(tmp_path / "wm")
    loaded = WorldModel.from_pretrained(tmp_path / "wm")
    ours = loaded.sample_chunk(image, actions(), seed=0, normalized=True)
    assert (ours - reference[0]).abs().max().item() < TOL


def test_imported_model_rolls_out_chunk_after_chunk(pipeline_dir, image):
    wm = imported(pipeline_dir, num_inference_steps=2)
    acts = np.random.default_rng(2).normal(size=(2 * FRAMES - 1, 3)).astype(np.float32)
    frames = wm.rollout(
        image, acts, seed=0, normalized=True
    )  # the second chunk starts from a generated frame
    assert frames.shape == (2 * FRAMES - 1, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[0], image)
    assert np.array_equal(frames, wm.rollout(image, acts, seed=0, normalized=True))


def test_the_tolerance_separates_the_samplers(pipeline_dir, image, reference):
    """The same weights sampled with egoworld's built-in flow sampler (what models built without a
    pipeline use) differ from the pipeline by far more than TOL: the test can fail."""
    wm = imported(pipeline_dir)
    extra = {k: v for k, v in wm.config.extra.items() if k != "scheduler"}
    builtin = WorldModel(dataclasses.replace(wm.config, extra=extra), wm.denoiser, wm.codec).eval()
    builtin.prompt_embeds = wm.prompt_embeds
    ours = builtin.sample_chunk(image, actions(), seed=0, normalized=True)
    assert (ours - reference[0]).abs().max().item() > 100 * TOL


def test_imported_cosmos_trains_with_cosmos_predict2_noise(pipeline_dir):
    wm = imported(pipeline_dir)
    assert wm.family.objective.noise == "cosmos-predict2"
    option = imported(pipeline_dir, extra={"train_noise": "logit-normal"})
    assert option.family.objective.noise == "logit-normal"
    batch = dict(frames=torch.rand(2, FRAMES, 3, SIZE, SIZE) * 2 - 1, actions=torch.randn(2, FRAMES, 3))
    wm.train()
    loss = wm.loss(batch, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert wm.denoiser.action_encoder.proj_out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"extra.train_noise='edm' is not known"):
        imported(pipeline_dir, extra={"train_noise": "edm"})


def test_unsupported_pipeline_and_missing_parts(pipeline_dir, tmp_path):
    other = tmp_path / "t2w"
    other.mkdir()
    index = json.loads((pipeline_dir / "model_index.json").read_text())
    (other / "model_index.json").write_text(json.dumps({**index, "_class_name": "CosmosTextToWorldPipeline"}))
    with pytest.raises(ValueError, match="holds a CosmosTextToWorldPipeline; expected one of") as err:
        WorldModel.from_diffusers(other, action_dim=3)
    assert "\n" not in str(err.value)

    incomplete = tmp_path / "no-vae"
    shutil.copytree(pipeline_dir, incomplete)
    shutil.rmtree(incomplete / "vae")
    with pytest.raises(FileNotFoundError, match=r"Cosmos2VideoToWorldPipeline\) is missing vae/") as err:
        read_model_index(incomplete)
    assert "\n" not in str(err.value)
