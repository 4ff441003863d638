"""One rollout chunk of an imported SVD equals what `StableVideoDiffusionPipeline` produces.

The pipeline is built from tiny components the way diffusers' own pipeline tests build them, saved
with the pipeline's `save_pretrained`, and imported with `WorldModel.from_diffusers`. A fresh action
wrapper has no effect (zero-initialised output), so the world model must reproduce the pipeline for
the same image, seed and sampler settings.

Tolerance: 1e-4 on frames in [-1, 1]; measured max |difference| 4.2e-6 (no guidance) and 5.0e-6
(guidance 2.5) on the 2-core sandbox. The two compute the same operations in the same order, but
float32 kernels round differently when (a) the pipeline's own `from_pretrained` leaves weights
memory-mapped at unaligned addresses (egoworld copies them into aligned storage, see
`egoworld.weights`) and (b) the pipeline batches the unconditional and conditional guidance branches
into one UNet call where egoworld makes two. 1e-4 is 20x the measured gap and 1.3 % of one 8-bit
level (2/255), so a real difference (a wrong scheduler, resize, noise order or guidance ramp) fails.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKLTemporalDecoder,
    EulerDiscreteScheduler,
    StableVideoDiffusionPipeline,
    UNetSpatioTemporalConditionModel,
)
from PIL import Image
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

from egoworld.world_model import WorldModel

TOL = 1e-4
SIZE, FRAMES = 32, 3


def tiny_svd_pipeline() -> StableVideoDiffusionPipeline:
    """The components of diffusers' SVD fast tests, with CLIP at the pipeline's 224-px input."""
    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32,
        num_attention_heads=8,
        projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        trained_betas=None,
        use_karras_sigmas=True,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        latent_channels=4,
    )
    torch.manual_seed(0)
    clip = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=224,  # the pipeline resizes a picture to 224 before CLIP
            intermediate_size=37,
            patch_size=32,
        )
    )
    extractor = CLIPImageProcessor(crop_size=224, size=224)
    return StableVideoDiffusionPipeline(
        unet=unet.eval(),
        image_encoder=clip.eval(),
        scheduler=scheduler,
        vae=vae.eval(),
        feature_extractor=extractor,
    )


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("svd") / "pipeline"
    tiny_svd_pipeline().save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def reference(folder, image, *, min_guidance, max_guidance, steps=3, seed=0, **kw) -> torch.Tensor:
    pipe = StableVideoDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        Image.fromarray(image),
        height=SIZE,
        width=SIZE,
        num_frames=FRAMES,
        num_inference_steps=steps,
        min_guidance_scale=min_guidance,
        max_guidance_scale=max_guidance,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="pt",
        **kw,
    ).frames  # [1, F, 3, H, W] in [0, 1]
    return out * 2 - 1


@pytest.mark.parametrize("guidance", [1.0, 2.5])
def test_one_chunk_equals_the_pipeline(pipeline_dir, image, guidance):
    ref = reference(
        pipeline_dir,
        image,
        min_guidance=1.0,
        max_guidance=guidance,
        fps=7,
        motion_bucket_id=127,
        noise_aug_strength=0.02,
    )
    wm = WorldModel.from_diffusers(
        pipeline_dir,
        action_dim=3,
        num_frames=FRAMES,
        height=SIZE,
        width=SIZE,
        fps=7,
        motion_bucket_id=127,
        cond_aug=0.02,
        guidance=guidance,
        num_inference_steps=3,
    ).eval()
    ours = wm.sample_chunk(image, np.zeros((FRAMES, 3), np.float32), seed=0)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max().item() < TOL, (ours - ref).abs().max().item()


def test_saved_import_still_equals_the_pipeline(pipeline_dir, image, tmp_path):
    wm = WorldModel.from_diffusers(
        pipeline_dir,
        action_dim=3,
        num_frames=FRAMES,
        height=SIZE,
        width=SIZE,
        fps=7,
        guidance=2.0,
        num_inference_steps=2,
    )
    wm.save_pretrained(tmp_path / "wm")
    loaded = WorldModel.from_pretrained(tmp_path / "wm")
    ours = loaded.sample_chunk(image, np.zeros((FRAMES, 3), np.float32), seed=3)
    ref = reference(pipeline_dir, image, min_guidance=1.0, max_guidance=2.0, steps=2, seed=3, fps=7)
    assert (ours - ref).abs().max().item() < TOL, (ours - ref).abs().max().item()
