"""Wan 2.1 / Fun-InP transformer weights: the original Wan (VideoX-Fun) layout -> the diffusers layout.

alibaba-pai publishes Wan2.1-Fun-{1.3B,14B}-InP as VideoX-Fun checkpoint folders, not diffusers ones::

    SRC/
      config.json                           the original `WanModel` config: model_type ("i2v"), dim,
                                            in_dim (36), out_dim (16), num_heads, num_layers, ffn_dim,
                                            freq_dim, text_len (512), eps, ...
      diffusion_pytorch_model.safetensors   the DiT with the original key names (or shards + index)
      Wan2.1_VAE.pth, models_t5_umt5-xxl-enc-bf16.pth, models_clip_open-clip-...-14.pth, ...
                                            VAE, UMT5-XXL and CLIP ViT-H/14: the Wan 2.1 i2v files

`convert_inp(SRC, DST)` writes `DST/transformer/` (diffusers' `WanTransformer3DModel`: config.json +
safetensors, the tensors unchanged, only renamed) and, with `components=` a diffusers Wan 2.1 i2v
pipeline folder (e.g. Wan-AI/Wan2.1-I2V-14B-480P-Diffusers), links its `vae/`, `text_encoder/`,
`tokenizer/`, `image_encoder/`, `image_processor/`, `scheduler/` and `model_index.json` beside it,
so that DST is what `ObservationModel.from_inp` (and `WanImageToVideoPipeline.from_pretrained`) loads.

The renaming (`ORIGINAL_TO_DIFFUSERS`, per block `BLOCK_ORIGINAL_TO_DIFFUSERS`): the original block
calls its norms norm1 (self-attention), norm3 (cross-attention, the only one with weights) and norm2
(FFN); diffusers numbers them in call order, so the weighted original `norm3` is diffusers' `norm2`.
The image cross-attention's `k_img` / `v_img` / `norm_k_img` are diffusers' `add_k_proj` /
`add_v_proj` / `norm_added_k`, and `img_emb.proj.{0,1,3,4}` the image embedder's norm1 / ff /
ff / norm2. Every key must be known: an unknown one (a Control / Camera adapter, say) is an error,
never dropped. `diffusers_to_original` is the inverse (the tests write original files with it and
check it against diffusers' own single-file converter).

Only safetensors are read as they are; a `.bin` / `.pt` / `.pth` is read only if
`torch.load(weights_only=True)` accepts it (plain tensors, no code runs), otherwise it is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

MARKER = "egoworld_convert_inp.json"  # written into DST: what was converted (and marks DST as ours)
COMPONENTS = ("vae", "text_encoder", "tokenizer", "image_encoder", "image_processor", "scheduler")

# original module path -> diffusers module path (parameter names after it are kept: weight, bias)
ORIGINAL_TO_DIFFUSERS = {
    "patch_embedding": "patch_embedding",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "img_emb.proj.0": "condition_embedder.image_embedder.norm1",
    "img_emb.proj.1": "condition_embedder.image_embedder.ff.net.0.proj",
    "img_emb.proj.3": "condition_embedder.image_embedder.ff.net.2",
    "img_emb.proj.4": "condition_embedder.image_embedder.norm2",
    "head.head": "proj_out",
    "head.modulation": "scale_shift_table",  # a parameter, [1, 2, dim]
}
BLOCK_ORIGINAL_TO_DIFFUSERS = {
    "self_attn.q": "attn1.to_q",
    "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "self_attn.norm_q": "attn1.norm_q",
    "self_attn.norm_k": "attn1.norm_k",
    "cross_attn.q": "attn2.to_q",
    "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0",
    "cross_attn.norm_q": "attn2.norm_q",
    "cross_attn.norm_k": "attn2.norm_k",
    "cross_attn.k_img": "attn2.add_k_proj",
    "cross_attn.v_img": "attn2.add_v_proj",
    "cross_attn.norm_k_img": "attn2.norm_added_k",
    "norm3": "norm2",  # the cross-attention norm (see the module docstring)
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
    "modulation": "scale_shift_table",  # a parameter, [1, 6, dim]
}
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_PREFIXES = ("model.diffusion_model.", "diffusion_model.")  # what some repackagings put in front
_ORIGINAL_KEYS = ("dim", "in_dim", "out_dim", "num_heads", "num_layers", "ffn_dim")
_COMPONENT_FILES = ("Wan2.1_VAE", "models_t5", "models_clip")  # .pth files in SRC that are not the DiT
IMAGE_DIM = 1280  # the CLIP ViT-H/14 width the original i2v `img_emb` reads


def _rename(key: str, top: dict[str, str], block: dict[str, str]) -> str | None:
    """`key` with its module path renamed through `top` / `block` (longest match); None if unknown."""
    m = _BLOCK.match(key)
    prefix, rest, table = ("", key, top) if m is None else (f"blocks.{m.group(1)}.", m.group(2), block)
    for old in sorted(table, key=len, reverse=True):
        if rest == old or rest.startswith(old + "."):
            return prefix + table[old] + rest[len(old) :]
    return None


def original_to_diffusers_key(key: str) -> str | None:
    """The diffusers name of an original Wan transformer key (None when the key is not known)."""
    return _rename(key, ORIGINAL_TO_DIFFUSERS, BLOCK_ORIGINAL_TO_DIFFUSERS)


def diffusers_to_original_key(key: str) -> str | None:
    """The original Wan name of a diffusers `WanTransformer3DModel` key (the inverse renaming)."""
    top = {v: k for k, v in ORIGINAL_TO_DIFFUSERS.items()}
    block = {v: k for k, v in BLOCK_ORIGINAL_TO_DIFFUSERS.items()}
    return _rename(key, top, block)


def _strip_prefix(state: dict[str, Any]) -> dict[str, Any]:
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def original_to_diffusers(state: dict[str, Any]) -> dict[str, Any]:
    """Rename an original-layout state dict; ValueError naming the keys that have no diffusers name."""
    state = _strip_prefix(state)
    out, unknown = {}, []
    for key, value in state.items():
        new = original_to_diffusers_key(key)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise ValueError(
            f"{len(unknown)} weight(s) are not part of a Wan 2.1 i2v / InP transformer, e.g. "
            f"{', '.join(sorted(unknown)[:3])}; expected only the original WanModel keys (a Control or "
            "Camera variant of Fun is not an InP model)"
        )
    return out


def diffusers_to_original(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `original_to_diffusers` (ValueError on a key it cannot name)."""
    out, unknown = {}, []
    for key, value in state.items():
        old = diffusers_to_original_key(key)
        if old is None:
            unknown.append(key)
        else:
            out[old] = value
    if unknown:
        raise ValueError(f"no original Wan name for {', '.join(sorted(unknown)[:3])}")
    return out


# configs ---------------------------------------------------------------------------------------------


def diffusers_config(original: dict[str, Any]) -> dict[str, Any]:
    """`WanTransformer3DModel` constructor arguments from an original `WanModel` config.json."""
    missing = [k for k in _ORIGINAL_KEYS if k not in original]
    if missing:
        raise ValueError(
            f"the config lacks {', '.join(missing)}; expected an original Wan / VideoX-Fun transformer "
            f"config (keys {', '.join(_ORIGINAL_KEYS)}, model_type)"
        )
    kind = original.get("model_type", "i2v")
    if kind != "i2v":
        raise ValueError(
            f"model_type={kind!r}; expected 'i2v' (Wan 2.1 image-to-video / Fun-InP: the 36-channel "
            "InP input and CLIP cross-attention)"
        )
    window = list(original.get("window_size", (-1, -1)))
    if window != [-1, -1]:
        raise ValueError(f"window_size={window}; diffusers' WanTransformer3DModel has global attention only")
    if int(original.get("text_len", 512)) != 512:
        raise ValueError(f"text_len={original['text_len']}; expected 512 (the Wan text length)")
    for flag in ("add_control_adapter", "add_ref_conv"):
        if original.get(flag):
            raise ValueError(f"{flag}=true: a Fun Control/reference variant, not an InP model")
    dim, heads = int(original["dim"]), int(original["num_heads"])
    if dim % heads:
        raise ValueError(f"dim={dim} is not a multiple of num_heads={heads}")
    return {
        "patch_size": list(original.get("patch_size", (1, 2, 2))),
        "num_attention_heads": heads,
        "attention_head_dim": dim // heads,
        "in_channels": int(original["in_dim"]),
        "out_channels": int(original["out_dim"]),
        "text_dim": int(original.get("text_dim", 4096)),
        "freq_dim": int(original.get("freq_dim", 256)),
        "ffn_dim": int(original["ffn_dim"]),
        "num_layers": int(original["num_layers"]),
        "cross_attn_norm": bool(original.get("cross_attn_norm", True)),
        "qk_norm": "rms_norm_across_heads" if original.get("qk_norm", True) else None,
        "eps": float(original.get("eps", 1e-6)),
        "image_dim": IMAGE_DIM,
        "added_kv_proj_dim": dim,
        "rope_max_seq_len": 1024,  # the original model's RoPE table length
    }


def original_config(config: dict[str, Any]) -> dict[str, Any]:
    """The original `WanModel` config.json of a diffusers i2v `WanTransformer3DModel` config."""
    dim = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    return {
        "_class_name": "WanModel",
        "model_type": "i2v",
        "patch_size": list(config["patch_size"]),
        "text_len": 512,
        "in_dim": int(config["in_channels"]),
        "dim": dim,
        "ffn_dim": int(config["ffn_dim"]),
        "freq_dim": int(config["freq_dim"]),
        "text_dim": int(config["text_dim"]),
        "out_dim": int(config["out_channels"]),
        "num_heads": int(config["num_attention_heads"]),
        "num_layers": int(config["num_layers"]),
        "window_size": [-1, -1],
        "qk_norm": config["qk_norm"] is not None,
        "cross_attn_norm": bool(config["cross_attn_norm"]),
        "eps": float(config["eps"]),
    }


# reading the source ----------------------------------------------------------------------------------


def read_original_config(src: Path) -> dict[str, Any]:
    """SRC/config.json, checked to be an original Wan transformer config."""
    path = src / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{src} holds no config.json; expected an original Wan / VideoX-Fun checkpoint folder "
            "(config.json + diffusion_pytorch_model.safetensors), e.g. alibaba-pai/Wan2.1-Fun-14B-InP"
        )
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not JSON ({err})") from None
    if not isinstance(raw, dict) or not all(k in raw for k in _ORIGINAL_KEYS):
        hint = ""
        if isinstance(raw, dict) and "num_attention_heads" in raw and "in_channels" in raw:
            hint = " (it is already a diffusers config: load the folder with from_inp directly)"
        raise ValueError(
            f"{path} is not an original Wan transformer config{hint}; expected the keys "
            f"{', '.join(_ORIGINAL_KEYS)} (alibaba-pai's Wan2.1-Fun-*-InP config.json)"
        )
    diffusers_config(raw)  # every other check
    return raw


def weight_files(src: Path) -> list[Path]:
    """The DiT's weight files in SRC: a safetensors index's shards, `diffusion_pytorch_model*.safetensors`,
    the one `*.safetensors`, or else a `.bin` / `.pt` / `.pth` that is not the VAE, T5 or CLIP."""
    index = src / "diffusion_pytorch_model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{index} is not a safetensors index ({err!r})") from None
        files = [src / str(n) for n in names]
        missing = [f.name for f in files if not f.is_file() or f.parent != src]
        if missing:
            raise FileNotFoundError(f"{index} lists {missing[0]}, which is not a file in {src}")
        return files
    for pattern in ("diffusion_pytorch_model*.safetensors", "*.safetensors"):
        files = sorted(src.glob(pattern))
        if pattern.startswith("diffusion") and files:
            return files
        if len(files) == 1:
            return files
        if len(files) > 1:
            raise ValueError(
                f"{src} holds {len(files)} safetensors files ({', '.join(f.name for f in files[:3])}); "
                "expected diffusion_pytorch_model*.safetensors or one transformer file"
            )
    pickled = [
        p
        for p in sorted(src.iterdir())
        if p.suffix in (".bin", ".pt", ".pth") and p.is_file() and not p.name.startswith(_COMPONENT_FILES)
    ]
    if len(pickled) == 1:
        return pickled
    raise FileNotFoundError(
        f"no transformer weights in {src}; expected diffusion_pytorch_model.safetensors (or its shards "
        f"and index){'' if not pickled else f'; found {len(pickled)} .bin/.pt/.pth files, expected one'}"
    )


def _load_pickled(path: Path) -> dict[str, Any]:
    """A `.bin` / `.pt` / `.pth` of plain tensors through torch's restricted unpickler (no code runs)."""
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{path} is not loadable with torch.load(weights_only=True) ({first[:160]}); egoworld reads "
            "safetensors, and pickled weights only when they hold nothing but tensors: convert it to "
            "safetensors with the tool that wrote it"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a mapping of names to tensors; expected a state dict")
    return state


def read_original_weights(src: Path) -> dict[str, Any]:
    """Every tensor of the DiT in SRC (original names, prefixes such as `diffusion_model.` removed)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for path in weight_files(src):
        if path.suffix == ".safetensors":
            try:
                part = load_file(str(path))
            except (SafetensorError, OSError) as err:
                raise ValueError(f"{path} is not a readable safetensors file ({err})") from None
        else:
            part = _load_pickled(path)
        clash = set(part) & set(state)
        if clash:
            raise ValueError(f"{path} repeats {sorted(clash)[0]}, already read from another file")
        state.update(part)
    return _strip_prefix(state)


# the conversion --------------------------------------------------------------------------------------


def check_components(folder: Path) -> None:
    """A diffusers Wan 2.1 i2v pipeline folder with the parts `from_inp` needs besides the DiT."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"components folder {folder} does not exist; expected a diffusers Wan i2v folder"
        )
    for part in ("vae", "text_encoder", "tokenizer", "image_encoder"):
        if not (folder / part).is_dir():
            raise FileNotFoundError(
                f"components folder {folder} has no {part}/; expected a diffusers Wan 2.1 i2v pipeline "
                "folder (vae/, text_encoder/, tokenizer/, image_encoder/, image_processor/), e.g. "
                "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
            )


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link every file of `src` into `dst` (a copy where linking is not possible)."""
    if src.is_file():
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        return
    dst.mkdir()
    for child in sorted(src.iterdir()):
        _link_or_copy(child, dst / child.name)


def convert_inp(
    src: str | Path,
    dst: str | Path,
    *,
    components: str | Path | None = None,
    torch_dtype=None,
) -> Path:
    """Convert an original-layout Wan 2.1 Fun-InP / i2v transformer folder into a diffusers folder.

    Args:
        src: the original checkpoint folder (config.json + the DiT's weights, see the module docstring).
        dst: the output folder: `transformer/` (+ the components) + `egoworld_convert_inp.json`;
            written atomically, and an existing folder is replaced only when it is empty or an
            earlier output of this function.
        components: a diffusers Wan 2.1 i2v pipeline folder whose VAE, UMT5, tokenizer, CLIP,
            image processor, scheduler and model_index.json are linked (or copied) into `dst`.
        torch_dtype: cast the weights (e.g. torch.bfloat16); None keeps the stored dtypes.

    The model is rebuilt as diffusers' `WanTransformer3DModel` and loaded strictly (every weight
    present, every shape right) before anything is written. Returns `dst`.
    """
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel

    from egoworld.io_utils import atomic_dir

    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(
            f"{src} is not a folder; expected an original Wan / VideoX-Fun checkpoint folder"
        )
    original = read_original_config(src)
    if components is not None:
        check_components(Path(components))
    config = diffusers_config(original)
    state = original_to_diffusers(read_original_weights(src))
    if torch_dtype is not None:
        state = {k: v.to(torch_dtype) for k, v in state.items()}
    with init_empty_weights():  # parameters on `meta`; load_state_dict(assign=True) puts the tensors in
        model = WanTransformer3DModel(**config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise ValueError(
            f"the weights in {src} do not fit the transformer its config.json describes: "
            f"{' '.join(lines[1:3])[:300]}"
        ) from None
    record = {
        "source": str(src.resolve()),
        "files": [p.name for p in weight_files(src)],
        "tensors": len(state),
        "dtypes": sorted({str(v.dtype).removeprefix("torch.") for v in state.values()}),
        "original_config": original,
        "components": None if components is None else str(Path(components).resolve()),
    }
    with atomic_dir(dst, replaces=MARKER) as tmp:
        model.save_pretrained(tmp / "transformer", safe_serialization=True)
        if components is not None:
            comp = Path(components)
            for part in COMPONENTS:
                if (comp / part).is_dir():
                    _link_or_copy(comp / part, tmp / part)
            if (comp / "model_index.json").is_file():
                _link_or_copy(comp / "model_index.json", tmp / "model_index.json")
        (tmp / MARKER).write_text(json.dumps(record, indent=1) + "\n")
    return dst
