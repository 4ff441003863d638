"""Pretrained Wan-Fun-InP parts from local diffusers folders, and the 36 → 52 channel widening.

A diffusers Wan 2.1 image-to-video / Fun-InP folder (what `WanImageToVideoPipeline.save_pretrained`
writes) holds `transformer/` (in_channels = 2C + 4), `vae/`, `text_encoder/` + `tokenizer/` (UMT5),
`image_encoder/` (CLIP vision tower) and `image_processor/` (its `CLIPImageProcessor`). Every part
loads through `egoworld.weights.load_local`; nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel

from egoworld.sim.inp_inputs import MASK_CHANNELS
from egoworld.weights import load_local


def expand_inp_to_52(
    model: WanTransformer3DModel, extra: int | None = None, *, share_weights: bool = False
) -> WanTransformer3DModel:
    """A new `WanTransformer3DModel` with `extra` zero-initialised input channels after the old ones.

    `extra` defaults to the latent width (`out_channels`): 36 → 52 for Wan-2.1-Fun-InP, 12 → 16
    for the tiny InP preset. All weights and buffers are copied in their dtype (bf16 stays bf16); the
    new `patch_embedding` columns are zero, so the output equals the old model's whatever the new
    channels hold (bit for bit in the tests). `share_weights=True` reuses the old tensors instead of
    copying them (no second copy of a large model; the old model must then not be used on its own).
    """
    from accelerate import init_empty_weights

    old_in = int(model.config.in_channels)
    extra = int(model.config.out_channels) if extra is None else int(extra)
    if extra < 1:
        raise ValueError(f"extra={extra}; expected at least one new input channel")
    config = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
    config["in_channels"] = old_in + extra
    with init_empty_weights():  # parameters on `meta`, buffers (RoPE tables) built for real
        new = WanTransformer3DModel(**config)
    state = model.state_dict()
    if not share_weights:
        state = {k: v.clone() for k, v in state.items()}
    w = state["patch_embedding.weight"]  # [D, C_in, p_t, p_h, p_w]
    wide = torch.zeros((w.shape[0], old_in + extra, *w.shape[2:]), dtype=w.dtype, device=w.device)
    wide[:, :old_in] = w
    state["patch_embedding.weight"] = wide
    new.load_state_dict(state, assign=True, strict=True)
    new = new.to(w.device)
    with torch.no_grad():  # non-persistent buffers (RoPE) exactly as the old model holds them
        old_buffers = dict(model.named_buffers())
        for name, buf in new.named_buffers():
            if name in old_buffers:
                buf.data = old_buffers[name].detach().clone()
    return new


def inp_transformer_folder(path: str | Path) -> Path:
    """The transformer folder of a pipeline folder (`transformer/`) or `path` itself; FileNotFoundError
    when neither holds a config.json."""
    path = Path(path)
    folder = path / "transformer" if (path / "transformer" / "config.json").is_file() else path
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no Wan InP transformer at {path}: expected {path / 'transformer' / 'config.json'} (a diffusers "
            "pipeline folder, e.g. a diffusers conversion of alibaba-pai/Wan2.1-Fun-1.3B-InP copied here) "
            f"or {path / 'config.json'}; nothing is downloaded"
        )
    return folder


def load_inp_transformer(path: str | Path, torch_dtype: torch.dtype | None = None) -> WanTransformer3DModel:
    """Load a pretrained Wan InP / i2v transformer (in_channels = 2C + 4) from a local diffusers folder.

    `path` is a diffusers pipeline folder (with `transformer/`) or the transformer folder itself;
    `torch_dtype` (e.g. torch.bfloat16) is the dtype the weights are loaded in (None: float32).
    """
    folder = inp_transformer_folder(path)
    model = load_local(WanTransformer3DModel, folder, torch_dtype=torch_dtype)
    c = model.config
    if c.in_channels != 2 * c.out_channels + MASK_CHANNELS:
        raise ValueError(
            f"{folder} holds a transformer with in_channels={c.in_channels}, out_channels={c.out_channels}; "
            f"expected the InP layout in_channels = 2 * out_channels + 4 = {2 * c.out_channels + 4}"
        )
    return model


def load_clip(folder: str | Path, torch_dtype: torch.dtype | None = None):
    """The CLIP vision tower of an `image_encoder/` folder as `egoworld.image_encoder.ImageEncoder`.

    The class is the one saved (`architectures` in config.json): Wan's `CLIPVisionModel`, or the
    `CLIPVisionModelWithProjection` diffusers' tiny test pipelines use.
    """
    from transformers import CLIPVisionModel, CLIPVisionModelWithProjection

    from egoworld.image_encoder import ImageEncoder

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no CLIP image encoder at {folder}; expected the pipeline's image_encoder/ folder "
            "(config.json + safetensors)"
        )
    saved = json.loads((folder / "config.json").read_text()).get("architectures")
    cls = CLIPVisionModel if saved == ["CLIPVisionModel"] else CLIPVisionModelWithProjection
    dtype = {} if torch_dtype is None else {"dtype": torch_dtype}
    return ImageEncoder(load_local(cls, folder, **dtype).eval())


def load_image_processor(folder: str | Path):
    """The pipeline's `CLIPImageProcessor` (`image_processor/`), or None when the folder has none."""
    from transformers import CLIPImageProcessor

    folder = Path(folder)
    if not (folder / "preprocessor_config.json").is_file():
        return None
    return CLIPImageProcessor.from_pretrained(folder, local_files_only=True)
