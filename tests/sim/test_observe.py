"""Observation model: 36 → 52 channels, InP mask layout, training signal, sampling, save/load."""

import pytest
import torch

from egoworld.backbones import wan
from egoworld.sim.observe import (
    ObservationModel,
    PixelCodec,
    expand_inp_to_52,
    load_inp_transformer,
    mask_latents,
    preset_config,
    train_observation_model,
    transformer_config,
)


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
    codec = PixelCodec(2)
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


def test_loss_falls_on_a_tiny_overfit():
    torch.manual_seed(0)
    small = dict(num_attention_heads=2, attention_head_dim=32, ffn_dim=128, num_layers=2, rope_max_seq_len=64)
    model = ObservationModel.build("tiny-pixel", height=16, width=16, transformer=small)
    g = torch.Generator().manual_seed(0)
    video = torch.rand(2, 9, 3, 16, 16, generator=g) * 2 - 1
    batch = {"target": video, "scene": video, "skeleton": torch.zeros_like(video) - 1}
    batch["mask"] = torch.zeros(2, 9, 1, 16, 16)
    x0, cond = model.encode_batch(batch)
    losses = train_observation_model(model, x0, cond["y"], steps=120, batch_size=2, lr=2e-3, log_every=0)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.7 * first, (first, last)


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


def test_save_load_round_trip(tmp_path):
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


def test_pretrained_inp_loads_from_a_local_folder(tmp_path):
    torch.manual_seed(0)
    base = wan.build_transformer("tiny-i2v")
    base.save_pretrained(tmp_path / "inp" / "transformer")
    wan.build_vae("tiny").save_pretrained(tmp_path / "inp" / "vae")
    model = ObservationModel.from_inp(tmp_path / "inp", "tiny")
    x, t, text = _inputs(12, b=1)
    with torch.no_grad():
        a = base(hidden_states=x, timestep=t, encoder_hidden_states=text).sample
        hand = torch.randn(1, 4, 3, 4, 4)
        b = model.transformer(
            hidden_states=torch.cat([x, hand], 1), timestep=t, encoder_hidden_states=text
        ).sample
    assert torch.equal(a, b)


def test_missing_or_wrong_inp_weights_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Wan InP transformer"):
        load_inp_transformer(tmp_path / "nowhere")
    wan.build_transformer("tiny").save_pretrained(tmp_path / "t2v")  # 4 input channels: not InP
    with pytest.raises(ValueError, match="expected the InP layout"):
        load_inp_transformer(tmp_path / "t2v")
    with pytest.raises(FileNotFoundError, match="egoworld_observation.json"):
        ObservationModel.from_pretrained(tmp_path)
