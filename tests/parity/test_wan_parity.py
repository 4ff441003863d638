"""One rollout chunk of an imported Wan 2.1 i2v equals what `WanImageToVideoPipeline` produces.

The pipeline is built from tiny components the way diffusers' Wan image-to-video fast tests build them
(36-channel i2v transformer with `image_dim`, Wan VAE, CLIP vision tower + `CLIPImageProcessor`,
`FlowMatchEulerDiscreteScheduler(shift=7.0)`; the T5 encoder and its tokenizer are built here because
nothing can be downloaded), saved with the pipeline's `save_pretrained`, and imported with
`WorldModel.from_diffusers`. A second folder carries the scheduler Wan 2.1 i2v ships (UniPC in flow mode,
flow_shift 3). Same image, seed and steps, empty prompt, no guidance (guidance_scale=1).

The pipeline cleans its prompt with `ftfy`, which this environment does not install; the test gives the
pipeline module an identity `fix_text` (what ftfy returns for the empty prompt).

Tolerance: 1e-4 on frames in [-1, 1]; measured max |difference| 2.4e-7 (FlowMatchEuler) and 2.8e-7
(UniPC) on the 2-core sandbox. The remaining rounding: egoworld gives the transformer a per-token
timestep [B, S] (the layout that carries per-frame actions) where the pipeline gives [B], and normalises
latents with `/ std` where the pipeline multiplies by `1 / std`. 1e-4 is 1.3 % of one 8-bit level
(2/255), so a real difference (a wrong scheduler, timestep, mask layout, CLIP preprocessing, condition
latents or text embedding) fails; the built-in sampler lands far outside it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from types import SimpleNamespace

import diffusers.pipelines.wan.pipeline_wan_i2v as wan_i2v
import numpy as np
import pytest
import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    UniPCMultistepScheduler,
    WanImageToVideoPipeline,
    WanTransformer3DModel,
)
from PIL import Image
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from egoworld.world_model import WorldModel

from .components import tiny_t5, tiny_wan_vae

TOL = 1e-4
SIZE, FRAMES, STEPS = 32, 5, 3
SCHEDULERS = {
    "euler": lambda: FlowMatchEulerDiscreteScheduler(shift=7.0),  # diffusers' fast tests
    "unipc": lambda: UniPCMultistepScheduler(  # Wan 2.1 i2v 480p's scheduler_config.json
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0, num_train_timesteps=1000
    ),
}


def tiny_wan_pipeline(scheduler: str) -> WanImageToVideoPipeline:
    vae = tiny_wan_vae()
    text_encoder, tokenizer = tiny_t5()
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=36,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=4,
    )
    torch.manual_seed(0)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=4,
            projection_dim=4,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            intermediate_size=16,
            patch_size=1,
        )
    )
    return WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae.eval(),
        scheduler=SCHEDULERS[scheduler](),
        image_processor=CLIPImageProcessor(crop_size=32, size=32),
        image_encoder=image_encoder.eval(),
        transformer=transformer.eval(),
    )


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan")
    for kind in SCHEDULERS:
        tiny_wan_pipeline(kind).save_pretrained(root / kind, safe_serialization=True)
    return root


def load_pipeline(folder) -> WanImageToVideoPipeline:
    pipe = WanImageToVideoPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def reference(folders, image):
    """The pipeline's chunk [1, F, 3, H, W] in [-1, 1] for the empty prompt and seed 0, per scheduler."""
    out = {}
    with pytest.MonkeyPatch.context() as mp, torch.no_grad():
        mp.setattr(wan_i2v, "ftfy", SimpleNamespace(fix_text=lambda text: text), raising=False)
        for kind in SCHEDULERS:
            frames = load_pipeline(folders / kind)(
                image=Image.fromarray(image),
                prompt="",
                height=SIZE,
                width=SIZE,
                num_frames=FRAMES,
                num_inference_steps=STEPS,
                guidance_scale=1.0,
                generator=torch.Generator("cpu").manual_seed(0),
                output_type="pt",
            ).frames
            out[kind] = frames * 2 - 1
    return out


def imported(folder) -> WorldModel:
    return WorldModel.from_diffusers(
        folder, action_dim=3, num_frames=FRAMES, height=SIZE, width=SIZE, num_inference_steps=STEPS
    ).eval()


def actions() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(FRAMES, 3)).astype(np.float32)  # no effect when fresh


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_one_chunk_equals_the_pipeline(folders, image, reference, scheduler):
    wm = imported(folders / scheduler)
    ours = wm.sample_chunk(image, actions(), seed=0, normalized=True)
    ref = reference[scheduler]
    assert ours.shape == ref.shape == (1, FRAMES, 3, SIZE, SIZE)
    assert (ours - ref).abs().max().item() < TOL, (ours - ref).abs().max().item()


def test_text_and_image_conditions_are_the_pipelines(folders, image):
    wm = imported(folders / "euler")
    pipe = load_pipeline(folders / "euler")
    with pytest.MonkeyPatch.context() as mp, torch.no_grad():
        mp.setattr(wan_i2v, "ftfy", SimpleNamespace(fix_text=lambda text: text), raising=False)
        text, _ = pipe.encode_prompt("", do_classifier_free_guidance=False, max_sequence_length=512)
        clip = pipe.encode_image(Image.fromarray(image), torch.device("cpu"))
        ours = wm.image_encoder.penultimate(wm._image_tensor(image), wm.family.clip_processor())
    assert wm.prompt_embeds.shape == text.shape == (1, 512, 32)
    torch.testing.assert_close(wm.prompt_embeds, text, rtol=0, atol=0)
    torch.testing.assert_close(ours, clip, rtol=0, atol=1e-6)


def test_saved_import_still_equals_the_pipeline(folders, image, reference, tmp_path):
    imported(folders / "unipc").save_pretrained(tmp_path / "wm")
    loaded = WorldModel.from_pretrained(tmp_path / "wm")
    ours = loaded.sample_chunk(image, actions(), seed=0, normalized=True)
    assert (ours - reference["unipc"]).abs().max().item() < TOL


def test_imported_model_rolls_out_chunk_after_chunk(folders, image):
    """The second chunk's CLIP input is a generated frame (float), through the pipeline's processor."""
    wm = WorldModel.from_diffusers(
        folders / "unipc", action_dim=3, num_frames=FRAMES, height=SIZE, width=SIZE, num_inference_steps=2
    ).eval()
    acts = np.random.default_rng(2).normal(size=(2 * FRAMES - 1, 3)).astype(np.float32)
    frames = wm.rollout(image, acts, seed=0, normalized=True)
    assert frames.shape == (2 * FRAMES - 1, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[0], image)
    assert np.array_equal(frames, wm.rollout(image, acts, seed=0, normalized=True))


def test_the_tolerance_separates_the_samplers(folders, image, reference):
    """The same weights sampled with egoworld's built-in sampler (FlowMatchEuler at flow_shift 3, what
    models built without a pipeline use) differ from the pipeline by far more than TOL."""
    wm = imported(folders / "euler")
    extra = {k: v for k, v in wm.config.extra.items() if k != "scheduler"}
    builtin = WorldModel(dataclasses.replace(wm.config, extra=extra), wm.denoiser, wm.codec, wm.image_encoder)
    builtin.prompt_embeds = wm.prompt_embeds
    ours = builtin.eval().sample_chunk(image, actions(), seed=0, normalized=True)
    assert (ours - reference["euler"]).abs().max().item() > 100 * TOL


def _edit_index(folder, **changes) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, **changes}))


def test_wan22_and_missing_parts_are_refused(folders, tmp_path):
    wan22 = tmp_path / "wan22"
    shutil.copytree(folders / "euler", wan22)
    _edit_index(wan22, expand_timesteps=True)
    with pytest.raises(ValueError, match="is a Wan 2.2 WanImageToVideoPipeline") as err:
        WorldModel.from_diffusers(wan22, action_dim=3)
    assert "\n" not in str(err.value)

    no_clip = tmp_path / "no-clip"
    shutil.copytree(folders / "euler", no_clip)
    shutil.rmtree(no_clip / "image_encoder")
    _edit_index(no_clip, image_encoder=[None, None])
    with pytest.raises(
        FileNotFoundError, match=r"is missing image_encoder/; expected it .*image_dim=4"
    ) as err:
        WorldModel.from_diffusers(no_clip, action_dim=3)
    assert "\n" not in str(err.value)

    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(folders / "euler", no_tokenizer)
    shutil.rmtree(no_tokenizer / "tokenizer")
    with pytest.raises(FileNotFoundError, match=r"WanImageToVideoPipeline\) is missing tokenizer/"):
        WorldModel.from_diffusers(no_tokenizer, action_dim=3)
