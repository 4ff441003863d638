"""Observation model: 36 → 52 channels, InP inputs (zero fill, mask layout and resampling), prompt
embeddings, CLIP, dtypes, training signal, sampling, save/load. Parity with `WanImageToVideoPipeline`:
`test_inp_parity.py`."""

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from transformers import CLIPVisionConfig, CLIPVisionModel

from egoworld.backbones import wan
from egoworld.sim import prompts
from egoworld.sim.inp_weights import load_clip
from egoworld.sim.observe import (
    ObservationModel,
    PackedPixelCodec,
    expand_inp_to_52,
    load_inp_transformer,
    mask_latents,
    preset_config,
    to_model_video,
    transformer_config,
)
from tests.parity.components import tiny_t5, tiny_umt5, tiny_wan_clip, tiny_wan_i2v_pipeline

PROMPT = "the robot turns left"


@pytest.fixture(scope="module")
def inp_folder(tmp_path_factory):
    """A tiny Wan 2.1 i2v / InP pipeline folder written by the pipeline's own save_pretrained."""
    root = tmp_path_factory.mktemp("inp") / "pipe"
    tiny_wan_i2v_pipeline(FlowMatchEulerDiscreteScheduler(shift=3.0)).save_pretrained(root)
    return root


def _config(**overrides):
    return preset_config("tiny", num_frames=5, height=32, width=32, prompt=PROMPT, **overrides)


def _batch(frames=5, size=32, seed=1, b=1):
    g = torch.Generator().manual_seed(seed)
    batch = {
        k: torch.rand(b, frames, 3, size, size, generator=g) * 2 - 1 for k in ("target", "scene", "skeleton")
    }
    batch["mask"] = (torch.rand(b, frames, 1, size, size, generator=g) > 0.5).float()
    return batch


def _inputs(c_in, b=2, t=3, h=4, w=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c_in, t, h, w, generator=g)
    return x, torch.tensor([900.0, 250.0][:b]), torch.zeros(b, 1, 16)


def test_52_channel_model_equals_inp_model_bit_for_bit():
    torch.manual_seed(0)
    base = wan.build_transformer("tiny-i2v")  # the InP layout: 4 + 4 + 4 = 12 channels
    wide = expand_inp_to_52(base)
    assert wide.config.in_channels == 16 and base.config.in_channels == 12
    x, t, text = _inputs(12)
    hand = torch.randn(2, 4, 3, 4, 4) * 3  # whatever the new channels hold
    with torch.no_grad():
        a = base(hidden_states=x, timestep=t, encoder_hidden_states=text).sample
        b = wide(hidden_states=torch.cat([x, hand], 1), timestep=t, encoder_hidden_states=text).sample
    assert torch.equal(a, b)  # bit for bit on this CPU build (zero weights add exact zeros)
    assert torch.count_nonzero(wide.patch_embedding.weight[:, 12:]) == 0
    assert (
        wide.blocks[0].ffn.net[0].proj.weight.data_ptr() != base.blocks[0].ffn.net[0].proj.weight.data_ptr()
    )


def test_real_presets_are_52_channels_at_the_paper_clip_shape():
    for name in ("wan2.1-fun-1.3b-inp", "wan2.1-fun-14b-inp"):
        cfg = preset_config(name)
        args = transformer_config(cfg)
        assert args["in_channels"] == 52 and args["out_channels"] == 16
        assert (cfg.num_frames, cfg.height, cfg.width, cfg.fps) == (61, 480, 832, 16)
        assert cfg.latent_frames == 16 and cfg.num_inference_steps == 50 and cfg.guidance == 1.0


def test_gradients_reach_the_new_channels():
    torch.manual_seed(0)
    model = ObservationModel.build("tiny")
    g = torch.Generator().manual_seed(1)
    batch = {k: torch.rand(1, 9, 3, 32, 32, generator=g) * 2 - 1 for k in ("target", "scene", "skeleton")}
    batch["mask"] = (torch.rand(1, 9, 1, 32, 32, generator=g) > 0.5).float()
    model.loss(batch, torch.Generator().manual_seed(2)).backward()
    grad = model.transformer.patch_embedding.weight.grad
    assert grad[:, 12:].abs().sum() > 0  # the skeleton channels learn


def test_mask_channels_follow_the_inp_layout():
    m = torch.zeros(1, 9, 1, 8, 8)
    m[:, 0] = 1.0  # frame 0 unobserved
    m[:, 3, :, :4] = 1.0  # top half of frame 3 unobserved
    lat = mask_latents(m, (2, 2))  # [B, 4, T, h, w], 1 = known
    assert lat.shape == (1, 4, 3, 2, 2)
    assert torch.all(lat[0, :, 0] == 0)  # frame 0 repeated over the 4 channels of latent frame 0
    assert torch.all(lat[0, 2, 1, 0] == 0) and torch.all(
        lat[0, 2, 1, 1] == 1
    )  # frame 3 = channel 2 of latent 1
    assert torch.all(lat[0, :, 2] == 1)


def test_pixel_codec_is_lossless():
    codec = PackedPixelCodec(2)
    video = torch.rand(2, 9, 3, 16, 16) * 2 - 1
    z = codec.encode(video)
    assert z.shape == (2, codec.latent_channels, 3, 8, 8)
    assert torch.allclose(codec.decode(z), video, atol=1e-6)


def test_ablation_flags_change_the_condition():
    torch.manual_seed(0)
    scene = torch.rand(1, 9, 3, 16, 16) * 2 - 1
    mask = torch.zeros(1, 9, 1, 16, 16)
    full = ObservationModel.build("tiny-pixel", height=16, width=16)
    no_mask = ObservationModel.build("tiny-pixel", height=16, width=16, use_mask=False)
    no_scene = ObservationModel.build("tiny-pixel", height=16, width=16, use_scene=False)
    c = full.codec.latent_channels
    y_full = full.conditions(scene, mask, scene)["y"]
    assert torch.all(y_full[:, :4] == 1) and torch.allclose(y_full[:, 4 : 4 + c], full.codec.encode(scene))
    assert torch.all(no_mask.conditions(scene, mask, scene)["y"][:, :4] == 0)
    y_ns = no_scene.conditions(scene, mask, scene, first_frame=scene[:, 0])["y"]
    assert torch.all(y_ns[:, :4, 1:] == 0) and torch.all(y_ns[:, :4, 0] == 1)  # only frame 0 known


def test_the_trainer_overfits_two_prepared_clips(tmp_path):
    """`egoworld.train` (the one loop) on clips written by `prepared.write_clips`: the trained model's
    loss on its two clips, same noise, falls well below the loss of the model it started from."""
    from egoworld.sim.observe import batch_from_clips
    from egoworld.sim.prepared import write_clips
    from egoworld.sim.train_observe import TrainObserveOptions, observation_run_config
    from egoworld.train import train

    rng = np.random.default_rng(0)
    clips = []
    for _ in range(2):
        video = rng.integers(0, 256, (9, 16, 16, 3), dtype=np.uint8)
        clips.append({
            "target": video, "scene": video, "mask": np.zeros((9, 16, 16), bool),
            "skeleton": np.zeros_like(video), "K": np.eye(3), "cam_to_world": np.tile(np.eye(4), (9, 1, 1)),
            "hand_keypoints": np.full((9, 2, 21, 3), np.nan, np.float32),
        })  # fmt: skip
    meta = {"layout": "test", "render": "splat", "voxel_size": 0.03, "fuse_frames": 1}
    write_clips(tmp_path / "prep", clips, {**meta, "depth": "ground truth"})
    options = TrainObserveOptions(
        tmp_path / "prep", tmp_path / "run", height=16, width=16, steps=60, batch=2, lr=2e-3
    )
    final = train(observation_run_config(options), progress=False)

    batch = batch_from_clips(clips)

    @torch.no_grad()
    def loss(model: ObservationModel) -> float:
        g = torch.Generator().manual_seed(1)
        return sum(float(model.eval()(batch, g)) for _ in range(8)) / 8

    torch.manual_seed(0)  # the run's seed: the weights it started from
    start = ObservationModel.build("tiny-pixel", height=16, width=16)
    before, after = loss(start), loss(ObservationModel.from_pretrained(final))
    assert after < 0.7 * before, (before, after)


def test_generate_shape_and_bad_inputs():
    torch.manual_seed(0)
    model = ObservationModel.build("tiny")
    scene = torch.rand(1, 9, 3, 32, 32) * 2 - 1
    out = model.generate(
        scene, torch.zeros(1, 9, 32, 32), scene, first_frame=scene[:, 0], num_inference_steps=2
    )
    assert out.shape == (1, 9, 3, 32, 32) and out.min() >= -1 and out.max() <= 1
    with pytest.raises(ValueError, match="expects 9 frames"):
        model.generate(scene[:, :5], torch.zeros(1, 5, 32, 32), scene[:, :5], num_inference_steps=1)
    with pytest.raises(ValueError, match="mask has shape"):
        model.generate(scene, torch.zeros(1, 8, 32, 32), scene, num_inference_steps=1)


def test_save_load_round_trip_without_text_encoder(tmp_path):
    torch.manual_seed(0)
    model = ObservationModel.build("tiny", use_mask=False)
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = ObservationModel.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    x, t, text = _inputs(16, b=1)
    cond = {"y": x[:, 4:], "text": text, "image": None}
    with torch.no_grad():
        assert torch.equal(
            model.velocity(x[:, :4], t / 1000, cond), loaded.velocity(x[:, :4], t / 1000, cond)
        )


def test_pretrained_inp_loads_from_a_local_folder(inp_folder):
    """from_inp: the widened transformer returns the saved InP transformer's output bit for bit; T5,
    CLIP and its processor come from the folder."""
    base = load_inp_transformer(inp_folder).eval()
    model = ObservationModel.from_inp(inp_folder, _config())
    assert model.config.use_image_encoder and model.image_processor is not None
    assert model.prompt_embeds.shape == (1, 512, 32) and model.prompt_embeds.abs().sum() > 0
    x, t, _ = _inputs(36, b=1)
    text, image = model.text_embeddings(1), torch.randn(1, 1025, 4)
    with torch.no_grad():
        a = base(hidden_states=x, timestep=t, encoder_hidden_states=text, encoder_hidden_states_image=image)
        b = model.transformer(
            hidden_states=torch.cat([x, torch.randn(1, 16, 3, 4, 4)], 1),
            timestep=t,
            encoder_hidden_states=text,
            encoder_hidden_states_image=image,
        )
    # zero columns add exact zeros; the convolution over 52 instead of 36 channels may still sum in
    # another order (oneDNN picks the kernel by shape): measured 6e-7 here, 0 at other shapes
    torch.testing.assert_close(a.sample, b.sample, rtol=0, atol=1e-6)


def test_missing_or_wrong_inp_weights_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Wan InP transformer"):
        load_inp_transformer(tmp_path / "nowhere")
    wan.build_transformer("tiny").save_pretrained(tmp_path / "t2v")  # 4 input channels: not InP
    with pytest.raises(ValueError, match="expected the InP layout"):
        load_inp_transformer(tmp_path / "t2v")
    with pytest.raises(FileNotFoundError, match="egoworld_observation.json"):
        ObservationModel.from_pretrained(tmp_path)
    inp = tmp_path / "inp"  # transformer and VAE only
    wan.build_transformer("tiny-i2v").save_pretrained(inp / "transformer")
    wan.build_vae("tiny").save_pretrained(inp / "vae")
    tiny_wan_clip()[0].save_pretrained(tmp_path / "clip" / "image_encoder")
    with pytest.raises(FileNotFoundError, match=r"no CLIP image encoder .* \(image_dim=16\)"):
        ObservationModel.from_inp(inp, "tiny")  # the transformer cross-attends to CLIP features
    with pytest.raises(FileNotFoundError, match="no T5/UMT5 text encoder .* expected .*text_encoder"):
        ObservationModel.from_inp(inp, "tiny", image_encoder=tmp_path / "clip")


def test_unknown_pixels_are_zero_in_the_masked_video():
    """Through the lossless pixel codec: unknown pixels reach the condition as 0 (not −1), in the full
    model and in the w/o-scene ablation (only the first frame known, the rest 0: the i2v input)."""
    batch = _batch(frames=9, size=16)
    scene, mask = batch["scene"], batch["mask"]
    full = ObservationModel.build("tiny-pixel", height=16, width=16)
    c = full.codec.latent_channels
    decoded = full.codec.decode(full.conditions(scene, mask, scene)["y"][:, 4 : 4 + c])
    torch.testing.assert_close(decoded, torch.where(mask > 0.5, 0.0, scene), rtol=0, atol=1e-6)
    no_scene = ObservationModel.build("tiny-pixel", height=16, width=16, use_scene=False)
    first = batch["target"][:, 0]
    y = no_scene.conditions(scene, mask, scene, first_frame=first)["y"]
    decoded = no_scene.codec.decode(y[:, 4 : 4 + c])
    torch.testing.assert_close(decoded[:, 0], first, rtol=0, atol=1e-6)
    assert torch.all(decoded[:, 1:] == 0)


def test_mask_resampling_is_trilinear_the_centre_of_each_block():
    """At 8x, latent pixel (i, j) of channel k of latent frame t is the mean of the centre 2x2 pixels
    of its 8x8 block in video frame 0 (t = 0) or 4t − 3 + k, of 1 − unknown (computed here by hand)."""
    g = torch.Generator().manual_seed(0)
    unknown = (torch.rand(2, 9, 1, 32, 32, generator=g) > 0.5).float()
    lat = mask_latents(unknown, (4, 4))
    assert lat.shape == (2, 4, 3, 4, 4)
    known = 1 - unknown[:, :, 0]
    expected = torch.zeros_like(lat)
    for t in range(3):
        for k in range(4):
            frame = 0 if t == 0 else 4 * t - 3 + k
            for i in range(4):
                for j in range(4):
                    block = known[:, frame, 8 * i + 3 : 8 * i + 5, 8 * j + 3 : 8 * j + 5]
                    expected[:, k, t, i, j] = block.mean(dim=(1, 2))
    torch.testing.assert_close(lat, expected, rtol=0, atol=1e-6)
    soft = unknown * 0.7  # binarised at 0.5 first, as the pipelines' mask processor does
    assert torch.equal(mask_latents(soft, (4, 4)), lat)


def test_a_clip_with_nothing_known_gets_zero_inp_channels():
    model = ObservationModel.build("tiny")
    batch = _batch(frames=9)
    y = model.conditions(batch["scene"], torch.ones_like(batch["mask"]), batch["skeleton"])["y"]
    assert torch.all(y[:, :8] == 0) and y[:, 8:].abs().sum() > 0  # mask + z_bg zero, z_hand kept


def _save_text_encoder(folder, encoder, tokenizer):
    encoder.save_pretrained(folder / "text_encoder")
    tokenizer.save_pretrained(folder / "tokenizer")
    return folder


def test_prompt_embeddings_are_computed_once_and_cached(tmp_path, monkeypatch):
    folder = _save_text_encoder(tmp_path / "te", *tiny_umt5())
    cache = tmp_path / "cache"
    first = prompts.cached_prompt_embeds(folder, "the robot", 512, cache_dir=cache)
    assert first.shape == (1, 512, 32) and len(list(cache.glob("prompt-*.safetensors"))) == 1
    assert first[:, :3].abs().sum() > 0 and torch.all(first[:, 3:] == 0)  # ▁the ▁robot </s>, then zeros

    def no_encoder(*_, **__):
        raise AssertionError("the text encoder was loaded again")

    monkeypatch.setattr(prompts, "load_text_encoder", no_encoder)
    assert torch.equal(prompts.cached_prompt_embeds(folder, "the robot", 512, cache_dir=cache), first)
    with pytest.raises(AssertionError, match="loaded again"):  # another prompt is not in the cache
        prompts.cached_prompt_embeds(folder, "the robot walks", 512, cache_dir=cache)


def test_text_encoder_classes_and_bad_folders(tmp_path):
    t5 = _save_text_encoder(tmp_path / "t5", *tiny_t5())
    assert prompts.cached_prompt_embeds(t5, PROMPT, 16).shape == (1, 16, 32)
    with pytest.raises(FileNotFoundError, match="no T5/UMT5 text encoder"):
        prompts.cached_prompt_embeds(tmp_path / "nowhere", PROMPT)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, image_size=8, patch_size=4)).save_pretrained(
        tmp_path / "clip" / "text_encoder"
    )  # fmt: skip
    with pytest.raises(ValueError, match="holds a CLIPVisionModel; expected one of UMT5EncoderModel"):
        prompts.cached_prompt_embeds(tmp_path / "clip", PROMPT)
    assert type(load_clip(tmp_path / "clip" / "text_encoder").clip) is CLIPVisionModel  # the class saved


def test_bf16_weights_end_to_end(inp_folder, tmp_path):
    """from_inp(torch_dtype=bf16): the DiT loads and stays bf16 (the VAE and CLIP float32), the widened
    model equals the bf16 base, a training step and sampling run, and save/load keeps bf16."""
    model = ObservationModel.from_inp(inp_folder, _config(), torch_dtype=torch.bfloat16)
    assert model.transformer.dtype == torch.bfloat16 and model.codec.vae.dtype == torch.float32
    base = load_inp_transformer(inp_folder, torch.bfloat16).eval()
    x, t, _ = _inputs(36, b=1)
    kwargs = dict(timestep=t.bfloat16(), encoder_hidden_states=model.text_embeddings(1).bfloat16(),
                  encoder_hidden_states_image=torch.randn(1, 1025, 4).bfloat16())  # fmt: skip
    with torch.no_grad():
        a = base(hidden_states=x.bfloat16(), **kwargs).sample
        b = model.transformer(
            hidden_states=torch.cat([x, torch.randn(1, 16, 3, 4, 4)], 1).bfloat16(), **kwargs
        )
    # 0 measured; allowed: a rounding flip of the 52-channel convolution (one bf16 ulp at O(1): 7.8e-3)
    torch.testing.assert_close(a.float(), b.sample.float(), rtol=0, atol=3e-2)
    loss = model.loss(_batch(), torch.Generator().manual_seed(0))
    loss.backward()
    grad = model.transformer.patch_embedding.weight.grad
    assert torch.isfinite(loss) and grad.dtype == torch.bfloat16 and grad[:, 36:].abs().sum() > 0
    batch = _batch()
    out = model.generate(batch["scene"], batch["mask"], batch["skeleton"], num_inference_steps=1)
    assert torch.isfinite(out).all()
    model.save_pretrained(tmp_path / "m")
    loaded = ObservationModel.from_pretrained(tmp_path / "m", torch_dtype=torch.bfloat16)
    assert loaded.transformer.dtype == torch.bfloat16
    again = loaded.generate(batch["scene"], batch["mask"], batch["skeleton"], num_inference_steps=1)
    assert torch.equal(out, again)


def test_save_load_keeps_prompt_clip_and_processor(inp_folder, tmp_path):
    model = ObservationModel.from_inp(inp_folder, _config()).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = ObservationModel.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config and loaded.image_processor is not None
    assert torch.equal(loaded.prompt_embeds, model.prompt_embeds)
    batch = _batch()
    cond = model.conditions(batch["scene"], batch["mask"], batch["skeleton"], batch["target"][:, 0])
    again = loaded.conditions(batch["scene"], batch["mask"], batch["skeleton"], batch["target"][:, 0])
    for key in ("y", "text", "image"):
        assert torch.equal(cond[key], again[key]), key


def test_text_and_image_dropout_as_fun_inp_trains(inp_folder, tmp_path):
    """Fun-InP's training-time dropout: per clip, the empty prompt's embedding (T5 of "", as the
    pipeline embeds it) in place of the prompt's, and zero CLIP features; no draws when both are 0."""
    model = ObservationModel.from_inp(inp_folder, _config(text_dropout=0.5, image_dropout=0.5))
    empty = prompts.cached_prompt_embeds(inp_folder, "", 512)
    assert torch.equal(model.empty_prompt_embeds, empty) and empty[:, 0].abs().sum() > 0  # </s>
    assert not torch.equal(model.prompt_embeds, empty)
    b = 64
    image = torch.randn(b, 257, 4)
    cond = {"y": torch.zeros(b, 1), "text": model.text_embeddings(b), "image": image}
    out = model.drop_text_and_image(cond, torch.Generator().manual_seed(0))
    is_empty = [torch.equal(row, empty[0]) for row in out["text"]]
    is_prompt = [torch.equal(row, model.prompt_embeds[0]) for row in out["text"]]
    assert all(a != c for a, c in zip(is_empty, is_prompt))  # each clip gets one of the two
    zeroed = [bool((row == 0).all()) for row in out["image"]]
    assert all(z or torch.equal(row, im) for z, row, im in zip(zeroed, out["image"], image))
    assert 16 <= sum(is_empty) <= 48 and 16 <= sum(zeroed) <= 48  # p = 0.5 of 64 (binomial, 4 sigma)
    assert torch.equal(cond["text"], model.text_embeddings(b))  # the input is not modified
    model.save_pretrained(tmp_path / "m")
    loaded = ObservationModel.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.empty_prompt_embeds, empty)
    plain = ObservationModel(_config(), model.transformer, model.codec, prompt_embeds=model.prompt_embeds)
    g = torch.Generator().manual_seed(0)
    assert plain.drop_text_and_image(cond, g) is cond and torch.equal(
        g.get_state(), torch.Generator().manual_seed(0).get_state()
    )
    with pytest.raises(ValueError, match="needs the empty prompt's embedding"):
        ObservationModel(
            _config(text_dropout=0.1), model.transformer, model.codec, prompt_embeds=model.prompt_embeds
        )


def test_clip_stretch_equals_processor_at_the_clip_size_only(inp_folder):
    """ "stretch" (Fun-InP's whole-frame bicubic resize) and "processor" (the pipeline's resize + centre
    crop) agree on a frame of CLIP's own size and differ on a wider frame (the crop drops its sides)."""
    model = ObservationModel.from_inp(inp_folder, _config())
    stretch = ObservationModel.from_inp(inp_folder, _config(clip_preprocess="stretch"))
    square = to_model_video(np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8))[:, 0]
    with torch.no_grad():
        torch.testing.assert_close(
            model.image_features(square, 1), stretch.image_features(square, 1), rtol=0, atol=1e-5
        )
        wide = torch.cat([square, square.flip(-1)], -1)  # [1, 3, 32, 64]
        assert (model.image_features(wide, 1) - stretch.image_features(wide, 1)).abs().max() > 1e-2
        assert torch.all(model.image_features(None, 2) == 0)  # no first frame: zero features (Fun-InP)
