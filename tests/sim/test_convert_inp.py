"""`egoworld sim convert-inp`: a Wan 2.1 i2v / Fun-InP transformer in the original Wan (VideoX-Fun)
layout becomes the diffusers layout, bit for bit.

The original files are written from a tiny diffusers `WanTransformer3DModel` (i2v: CLIP cross-attention
with the original's 1280-wide image input) with `diffusers_to_original`; that inverse naming is checked
against the reference, diffusers' own single-file converter (`convert_wan_transformer_to_diffusers`),
which must map the original names back to exactly the model's state dict. The converted folder then
loads with `WanTransformer3DModel.from_pretrained` (every tensor `torch.equal` to the model's, the same
output), with `--components` as a `WanImageToVideoPipeline` and through `ObservationModel.from_inp`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file

from egoworld.cli import main
from egoworld.sim.convert_inp import MARKER, diffusers_to_original, original_config

# the tiny model: 2 blocks, width 24, text width 32 (the tiny UMT5's), CLIP width 1280 (the original's)
CONFIG = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, out_channels=16,
    text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280, added_kv_proj_dim=24, rope_max_seq_len=1024,
)  # fmt: skip


@pytest.fixture(scope="module")
def model() -> WanTransformer3DModel:
    torch.manual_seed(0)
    m = WanTransformer3DModel(**CONFIG).eval()
    with torch.no_grad():  # no parameter left at a constant init (ones / zeros would hide a swap)
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m


def write_original(model, folder: Path, *, shards: int = 1, prefix: str = "", pickled: bool = False) -> Path:
    """The model in the original layout: config.json + diffusion_pytorch_model*.safetensors (or .bin)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(original_config(dict(model.config))))
    state = {prefix + k: v.contiguous() for k, v in diffusers_to_original(model.state_dict()).items()}
    (folder / "Wan2.1_VAE.pth").write_bytes(b"not read: the VAE of the release")
    if pickled:
        torch.save(state, folder / "diffusion_pytorch_model.bin")
        return folder
    if shards == 1:
        save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))
        return folder
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k] for k in keys[i::shards]}
        save_file(part, str(folder / name))
        weight_map.update(dict.fromkeys(part, name))
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def assert_same_model(converted: WanTransformer3DModel, model: WanTransformer3DModel) -> None:
    a, b = converted.state_dict(), model.state_dict()
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, differ[:3]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 36, 2, 4, 4, generator=g)
    kwargs = dict(
        timestep=torch.tensor([500.0]),
        encoder_hidden_states=torch.randn(1, 7, 32, generator=g),
        encoder_hidden_states_image=torch.randn(1, 5, 1280, generator=g),
    )
    with torch.no_grad():
        assert torch.equal(converted(x, **kwargs).sample, model(x, **kwargs).sample)


def test_original_names_are_what_diffusers_single_file_converter_reads(model):
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    original = diffusers_to_original(model.state_dict())
    modules = {k.split(".")[0] for k in original}
    assert modules == {"patch_embedding", "text_embedding", "time_embedding", "time_projection", "blocks",
                       "head", "img_emb"}  # fmt: skip
    assert original["blocks.0.modulation"].shape == (1, 6, 24)
    assert original["head.modulation"].shape == (1, 2, 24)
    assert original["blocks.1.norm3.weight"].shape == (24,)  # the cross-attention norm, diffusers' norm2
    assert original["blocks.0.cross_attn.k_img.weight"].shape == (24, 24)
    assert original["img_emb.proj.1.weight"].shape == (1280, 1280)
    reference = convert_wan_transformer_to_diffusers(dict(original))
    state = model.state_dict()
    assert reference.keys() == state.keys()
    assert all(torch.equal(reference[k], state[k]) for k in state)


@pytest.mark.parametrize("layout", ["single", "sharded-prefixed", "pickled"])
def test_converted_folder_loads_bit_for_bit(model, tmp_path, capsys, layout):
    kw = {"single": {}, "sharded-prefixed": {"shards": 3, "prefix": "model.diffusion_model."},
          "pickled": {"pickled": True}}[layout]  # fmt: skip
    src = write_original(model, tmp_path / "Wan2.1-Fun-InP", **kw)
    dst = tmp_path / "fun-diffusers"
    assert main(["sim", "convert-inp", str(src), "--out", str(dst)]) == 0
    assert "wrote the diffusers transformer" in capsys.readouterr().out
    converted = WanTransformer3DModel.from_pretrained(dst / "transformer").eval()
    got = {k: tuple(v) if isinstance(v, list) else v for k, v in converted.config.items() if k in CONFIG}
    assert got == CONFIG
    assert_same_model(converted, model)
    record = json.loads((dst / MARKER).read_text())
    assert record["tensors"] == len(model.state_dict()) and record["original_config"]["in_dim"] == 36
    # a second conversion replaces the earlier output (it carries the marker)
    assert main(["sim", "convert-inp", str(src), "--out", str(dst), "--dtype", "bfloat16"]) == 0
    from safetensors.torch import load_file

    half = {k: v for f in (dst / "transformer").glob("*.safetensors") for k, v in load_file(f).items()}
    assert half.keys() == model.state_dict().keys() and {v.dtype for v in half.values()} == {torch.bfloat16}


def test_components_make_a_pipeline_that_from_inp_loads(model, tmp_path):
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    from egoworld.sim.observe import ObservationModel, preset_config
    from tests.parity.components import tiny_umt5, tiny_wan_vae

    text_encoder, tokenizer = tiny_umt5()
    torch.manual_seed(0)
    clip = CLIPVisionModel(  # the original's CLIP width (1280), otherwise tiny
        CLIPVisionConfig(
            hidden_size=1280,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=8,
            image_size=32,
            patch_size=16,
        )
    ).eval()
    comp = tmp_path / "Wan2.1-I2V-Diffusers"
    WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_wan_vae().eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        image_processor=CLIPImageProcessor(crop_size=32, size=32),
        image_encoder=clip,
        transformer=WanTransformer3DModel(**{**CONFIG, "num_layers": 1}),
    ).save_pretrained(comp)
    src = write_original(model, tmp_path / "Wan2.1-Fun-InP")
    dst = tmp_path / "fun-diffusers"
    assert main(["sim", "convert-inp", str(src), "--out", str(dst), "--components", str(comp)]) == 0
    assert (dst / "vae" / "config.json").is_file() and (dst / "model_index.json").is_file()
    vae_file = next((dst / "vae").glob("*.safetensors"))
    assert os.path.samefile(vae_file, comp / "vae" / vae_file.name)  # linked, not copied

    pipe = WanImageToVideoPipeline.from_pretrained(dst)  # diffusers reads it as a pipeline
    assert_same_model(pipe.transformer.eval(), model)
    config = preset_config("tiny", num_frames=5, height=32, width=32, prompt="the robot turns left")
    obs = ObservationModel.from_inp(dst, config)
    assert obs.transformer.config.in_channels == 52 and obs.image_encoder is not None
    w52 = obs.transformer.patch_embedding.weight
    assert torch.equal(w52[:, :36], model.patch_embedding.weight) and not w52[:, 36:].any()


class _Planted:
    """Unpickling this creates the file `path` (what a planted pickle could do: run any code)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _damage(model, tmp_path: Path, kind: str) -> Path:
    src = write_original(model, tmp_path / "src", pickled=kind == "planted")
    weights = src / "diffusion_pytorch_model.safetensors"
    state = diffusers_to_original(model.state_dict())
    if kind == "planted":
        torch.save({"w": _Planted(str(tmp_path / "PWNED"))}, src / "diffusion_pytorch_model.bin")
    elif kind == "unknown-key":
        save_file({**state, "control_adapter.conv.weight": torch.zeros(2)}, str(weights))
    elif kind == "missing-key":
        save_file({k: v for k, v in state.items() if k != "blocks.1.ffn.2.weight"}, str(weights))
    elif kind == "t2v":
        cfg = json.loads((src / "config.json").read_text())
        (src / "config.json").write_text(json.dumps({**cfg, "model_type": "t2v"}))
    elif kind == "diffusers-config":
        (src / "config.json").write_text(json.dumps(dict(model.config)))
    elif kind == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    return src


@pytest.mark.parametrize(
    "kind,needle",
    [
        ("planted", "not loadable with torch.load(weights_only=True)"),
        ("unknown-key", "control_adapter.conv.weight"),
        ("missing-key", "blocks.1.ffn.net.2.weight"),
        ("t2v", "model_type='t2v'; expected 'i2v'"),
        ("diffusers-config", "already a diffusers config"),
        ("truncated", "not a readable safetensors file"),
    ],
)
def test_bad_sources_are_one_line_and_write_nothing(model, tmp_path, capsys, kind, needle):
    src = _damage(model, tmp_path, kind)
    dst = tmp_path / "out"
    code = main(["sim", "convert-inp", str(src), "--out", str(dst)])
    assert code == 2
    line = _one_line(capsys)
    assert needle in line, line
    assert not dst.exists() and not (tmp_path / "PWNED").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no temporary folder left
