"""EgoSim's observation model builds the Wan i2v / Fun-InP input exactly as `WanImageToVideoPipeline`.

A tiny `WanImageToVideoPipeline` (transformer, Wan VAE, CLIP and its image processor as diffusers'
own fast tests build them; a tiny UMT5 — Wan's text-encoder class — and its tokenizer built here,
since nothing can be downloaded) is saved with the pipeline's `save_pretrained` and loaded by
`ObservationModel.from_inp` through `egoworld.weights.load_local`. For the same image (and last
image), prompt, seed and scheduler (FlowMatchEuler, shift 3, 1 step, guidance 1), forward hooks
record what each transformer is called with and returns:

- channels 0–35 of the 52 (noisy latent, 4 mask channels, 16 condition latents) equal the
  pipeline's 36 input channels — for the w/o-scene ablation (first frame only: the i2v setting), for
  the full model with nothing rendered, and for the full model with the last frame known (against
  the pipeline's `prepare_latents(..., last_image)`, latents + mask + condition); the text embedding
  (UMT5 of the prompt, 512 tokens, padding zeroed), the CLIP features and the timestep are the
  pipeline's;
- with channels 36–51 zero-initialised, the 52-channel model's output equals the 36-channel
  model's: bit for bit here (≤ 1e-6 allowed) against the base loaded through egoworld on the
  pipeline's own inputs, and within TOL against the pipeline's own call.

Tolerance TOL = 1e-5 (absolute; condition latents and outputs are O(1): max 0.99 and 1.67 here).
The only rounding left: egoworld normalises the condition latents with `(z − mean) / std`
(`egoworld.codecs.WanCodec`), the pipeline with `(z − mean) · (1 / std)`, ≤ 1 ulp apart. Measured on
the 2-core sandbox: condition channels 6.0e-8, transformer output 4.8e-7; noisy latent, mask,
timestep, text embedding and CLIP features 0 (bit for bit). A real convention difference is far
larger: even with this tiny random VAE, filling unknown pixels with −1 instead of 0 moves the
condition latents by 7.8e-3 (780 × TOL, the last test), and a swapped mask polarity moves the mask
channels by 1.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import diffusers.pipelines.wan.pipeline_wan_i2v as wan_i2v
import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline
from PIL import Image

from egoworld.sim.inp_weights import load_inp_transformer
from egoworld.sim.observe import ObservationModel, preset_config, to_model_video
from tests.parity.components import tiny_wan_i2v_pipeline

TOL = 1e-5
SIZE, FRAMES = 32, 5
PROMPT = "the robot turns left"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("inp") / "wan-i2v"
    pipe = tiny_wan_i2v_pipeline(FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.save_pretrained(root, safe_serialization=True)
    return root


@pytest.fixture(scope="module")
def pictures():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(2)]  # first, last


@pytest.fixture(scope="module")
def reference(folder, pictures):
    """What the pipeline's transformer is called with and returns for the first picture."""
    return pipeline_call(folder, pictures[0])


@contextlib.contextmanager
def recording(module):
    """Record the keyword arguments and the output of the first call of `module`."""
    seen: dict = {}

    def before(_, args, kwargs):
        if "kwargs" not in seen:
            seen["kwargs"] = {k: v.detach().clone() for k, v in kwargs.items() if torch.is_tensor(v)}

    def after(_, args, kwargs, output):
        if "out" not in seen:
            seen["out"] = (output[0] if isinstance(output, tuple) else output.sample).detach().clone()

    handles = [
        module.register_forward_pre_hook(before, with_kwargs=True),
        module.register_forward_hook(after, with_kwargs=True),
    ]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def pipeline_call(folder, first) -> dict:
    pipe = WanImageToVideoPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    with (
        pytest.MonkeyPatch.context() as mp,
        torch.no_grad(),
        recording(pipe.transformer) as seen,
    ):
        # the pipeline cleans prompts with ftfy, not installed here; for this ASCII prompt it is the identity
        mp.setattr(wan_i2v, "ftfy", SimpleNamespace(fix_text=lambda text: text), raising=False)
        pipe(
            image=Image.fromarray(first),
            prompt=PROMPT,
            height=SIZE,
            width=SIZE,
            num_frames=FRAMES,
            num_inference_steps=1,
            guidance_scale=1.0,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type="latent",
        )
    return seen


def observation_model(folder, **overrides) -> ObservationModel:
    config = preset_config("tiny", num_frames=FRAMES, height=SIZE, width=SIZE, prompt=PROMPT, **overrides)
    return ObservationModel.from_inp(folder, config).eval()


def egoworld_call(model, first, scene, unknown) -> dict:
    g = torch.Generator().manual_seed(5)
    skeleton = torch.rand(scene.shape, generator=g) * 2 - 1  # whatever the skeleton video holds
    with recording(model.transformer) as seen:
        model.generate(scene, unknown, skeleton, first_frame=first, num_inference_steps=1, seed=0)
    return seen


def random_scene(last=None) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    scene = torch.rand(1, FRAMES, 3, SIZE, SIZE, generator=g) * 2 - 1  # a render the mask hides
    if last is not None:
        scene[:, -1] = to_model_video(last[None])[:, 0]
    return scene


CASES = {
    # w/o scene render: the first frame is the only known pixel, the rest is 0 (the i2v input)
    "no-scene": (dict(use_scene=False), torch.zeros),
    # the full model with nothing rendered: the same input
    "full-empty-render": (dict(), torch.ones),
}


@pytest.mark.parametrize("case", list(CASES))
def test_first_36_channels_text_and_image_equal_the_pipeline(folder, pictures, reference, case):
    overrides, unknown = CASES[case]
    first, ref = pictures[0], reference
    model = observation_model(folder, **overrides)
    ours = egoworld_call(
        model, to_model_video(first[None])[:, 0], random_scene(), unknown(1, FRAMES, 1, SIZE, SIZE)
    )
    r, o = ref["kwargs"], ours["kwargs"]
    assert r["hidden_states"].shape == (1, 36, 2, 4, 4) and o["hidden_states"].shape == (1, 52, 2, 4, 4)
    diff = (o["hidden_states"][:, :36] - r["hidden_states"]).abs()
    assert diff[:, :20].max().item() == 0  # noisy latent and mask: identical
    assert diff.max().item() < TOL, diff.max().item()
    torch.testing.assert_close(o["timestep"], r["timestep"], rtol=0, atol=0)
    assert o["encoder_hidden_states"].shape == r["encoder_hidden_states"].shape == (1, 512, 32)
    torch.testing.assert_close(o["encoder_hidden_states"], r["encoder_hidden_states"], rtol=0, atol=0)
    torch.testing.assert_close(
        o["encoder_hidden_states_image"], r["encoder_hidden_states_image"], rtol=0, atol=TOL
    )
    out_diff = (ours["out"] - ref["out"]).abs().max().item()
    assert out_diff < TOL, out_diff  # 52 channels, 36–51 zero: the 36-channel pipeline's output


def test_known_last_frame_equals_the_pipelines_first_last_condition(folder, pictures):
    """The full model with the last frame rendered and known builds the latents + mask + condition of
    `WanImageToVideoPipeline.prepare_latents(image, last_image=...)` (mask 1 on the first and the last
    frame; the video between them 0). `prepare_latents` is called directly: the pipeline's `__call__`
    would also CLIP-encode the last image, an input only first-last-frame transformers take."""
    first, last = pictures
    pipe = WanImageToVideoPipeline.from_pretrained(folder)
    with torch.no_grad():
        image, last_image = (
            pipe.video_processor.preprocess(Image.fromarray(p), SIZE, SIZE) for p in pictures
        )
        latents, condition = pipe.prepare_latents(
            image, 1, 16, SIZE, SIZE, FRAMES, torch.float32, torch.device("cpu"),
            torch.Generator("cpu").manual_seed(0), None, last_image,
        )  # fmt: skip
    ref = torch.cat([latents, condition], 1)
    mask = condition[:, :4]  # latent frame 1 = video frames 1-4: only frame 4 (the last) known
    assert torch.all(mask[:, :, 0] == 1) and torch.all(mask[:, :3, 1] == 0) and torch.all(mask[:, 3, 1] == 1)
    unknown = torch.ones(1, FRAMES, 1, SIZE, SIZE)
    unknown[:, -1] = 0
    scene = random_scene()
    scene[:, -1] = to_model_video(last[None])[:, 0]
    ours = egoworld_call(observation_model(folder), to_model_video(first[None])[:, 0], scene, unknown)
    diff = (ours["kwargs"]["hidden_states"][:, :36] - ref).abs()
    assert diff[:, :20].max().item() == 0
    assert diff.max().item() < TOL, diff.max().item()


def test_zero_initialised_channels_leave_the_base_output(folder, reference):
    """The pipeline's own 36 input channels + arbitrary 16 more through the 52-channel model equal the
    36-channel base (both loaded through egoworld) exactly."""
    ref = reference
    kwargs = ref["kwargs"]
    base = load_inp_transformer(folder).eval()
    wide = observation_model(folder).transformer
    extra = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(9)) * 3
    with torch.no_grad():
        a = base(**kwargs).sample
        b = wide(**{**kwargs, "hidden_states": torch.cat([kwargs["hidden_states"], extra], 1)}).sample
    # zero columns add exact zeros (0.0 measured here); the convolution over 52 instead of 36 channels
    # may sum in another order on another CPU or a GPU, so a few ulp are allowed
    assert (a - b).abs().max().item() <= 1e-6
    assert (a - ref["out"]).abs().max().item() < TOL  # and the base is the pipeline's transformer


def test_the_tolerance_separates_the_old_black_fill(folder, pictures, reference):
    """Unknown pixels filled with −1 (the earlier convention) give condition latents far outside TOL."""
    first, ref = pictures[0], reference
    model = observation_model(folder)
    video = torch.full((1, FRAMES, 3, SIZE, SIZE), -1.0)
    video[:, 0] = to_model_video(first[None])[:, 0]
    with torch.no_grad():
        z_black = model.codec.encode_condition(video)
    diff = (z_black - ref["kwargs"]["hidden_states"][:, 20:36]).abs().max().item()
    assert diff > 100 * TOL, diff
