"""Read a diffusers pipeline folder (what `Pipeline.save_pretrained` writes) into world-model parts.

    PIPELINE_DIR/
      model_index.json        {"_class_name": "StableVideoDiffusionPipeline", "unet": [...], ...}
      unet/ | transformer/    the denoiser (config.json + safetensors)
      vae/                    the family's VAE
      image_encoder/          CLIP vision tower (SVD, Wan i2v)
      feature_extractor/ | image_processor/   CLIP preprocessing (mean/std)
      scheduler/              the sampler's config
      text_encoder/, tokenizer/               T5 / UMT5 (Cosmos, Wan; an empty prompt is encoded once)

Nothing is downloaded: every part loads from the folder (`egoworld.weights.load_local`). A folder
that is not a pipeline of a supported family, or misses a part, is a ValueError / FileNotFoundError
naming what is missing and what was expected. Wan: the Wan 2.1 image-to-video layout (noisy latents +
mask + condition latents, CLIP image features when the transformer has `image_dim`); Wan 2.2 folders
(`expand_timesteps`, `boundary_ratio` / `transformer_2`) are refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

# pipeline class -> (family, denoiser folder, parts that must be present)
PIPELINES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "StableVideoDiffusionPipeline": ("svd", "unet", ("unet", "vae", "image_encoder", "scheduler")),
    "Cosmos2VideoToWorldPipeline": (
        "cosmos",
        "transformer",
        ("transformer", "vae", "scheduler", "text_encoder", "tokenizer"),
    ),
    "WanImageToVideoPipeline": (
        "wan",
        "transformer",
        ("transformer", "vae", "scheduler", "text_encoder", "tokenizer"),
    ),
}


@dataclass
class PipelineParts:
    """The loaded pieces of a pipeline folder, ready for `WorldModel.from_diffusers`.

    Args:
        family: "svd", "cosmos" or "wan".
        pipeline_class: the `_class_name` of model_index.json.
        denoiser: the unchanged diffusers UNet / transformer.
        vae: the pipeline's VAE.
        image_encoder: transformers CLIP vision model, or None.
        image_mean, image_std: CLIP normalisation from the feature extractor / image processor.
        scheduler_config: the pipeline's scheduler config (sampling uses exactly this scheduler).
        prompt_embeds: the text encoder's embedding of the empty prompt [1, L, D] (Cosmos, Wan), or None.
        image_processor: the CLIP preprocessor config (preprocessor_config.json, `image_processor_type` set
            to the class model_index.json names), or None; Wan's CLIP input goes through it.
        config_defaults: `WorldModelConfig` fields whose default differs for this pipeline (the pipeline's
            own call defaults, e.g. Cosmos's fps=16); explicit values win.
    """

    family: str
    pipeline_class: str
    denoiser: nn.Module
    vae: nn.Module
    image_encoder: nn.Module | None = None
    image_mean: tuple[float, ...] | None = None
    image_std: tuple[float, ...] | None = None
    scheduler_config: dict[str, Any] = field(default_factory=dict)
    prompt_embeds: Any = None
    image_processor: dict[str, Any] | None = None
    config_defaults: dict[str, Any] = field(default_factory=dict)


# `Cosmos2VideoToWorldPipeline.__call__(fps=16)`: the frame rate its transformer's RoPE is told
PIPELINE_CALL_DEFAULTS: dict[str, dict[str, Any]] = {"cosmos": {"fps": 16}}


def is_pipeline_folder(folder: str | Path) -> bool:
    return (Path(folder) / "model_index.json").is_file()


def read_model_index(folder: str | Path) -> tuple[str, dict[str, Any]]:
    """(pipeline class name, model_index dict); ValueError for an unsupported or unreadable folder."""
    folder = Path(folder)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise FileNotFoundError(
            f"{index_path} not found; expected a diffusers pipeline folder (save_pretrained of "
            f"{', '.join(PIPELINES)})"
        )
    try:
        index = json.loads(index_path.read_text())
        name = index["_class_name"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{index_path} is not a diffusers model_index.json ({err})") from err
    if name not in PIPELINES:
        raise ValueError(
            f"{folder} holds a {name}; expected one of {', '.join(PIPELINES)} (an image-to-video pipeline "
            "of a supported family)"
        )
    family, _, required = PIPELINES[name]
    if family == "wan":
        wan22 = {
            k: index.get(k)
            for k in ("expand_timesteps", "boundary_ratio", "transformer_2")
            if index.get(k) not in (None, False, [None, None])
        }
        if wan22:
            raise ValueError(
                f"{folder} is a Wan 2.2 {name} ({wan22}); expected the Wan 2.1 image-to-video layout "
                "(one transformer, mask + condition latents, no expand_timesteps)"
            )
    missing = [p for p in required if not (folder / p).is_dir() or index.get(p) in (None, [None, None])]
    if missing:
        raise FileNotFoundError(
            f"{folder} ({name}) is missing {', '.join(f'{m}/' for m in missing)}; expected the folders "
            "the pipeline's save_pretrained writes"
        )
    return name, index


def _component_class(index: dict[str, Any], part: str):
    import importlib

    library, class_name = index[part]
    module = importlib.import_module(library)
    return getattr(module, class_name)


def _image_processor_config(folder: Path, index: dict[str, Any]) -> dict[str, Any] | None:
    """The CLIP preprocessor config (feature_extractor/ for SVD, image_processor/ for Wan), or None."""
    for name in ("feature_extractor", "image_processor"):
        cfg = folder / name / "preprocessor_config.json"
        if cfg.is_file() and index.get(name) not in (None, [None, None]):
            d = json.loads(cfg.read_text())
            entry = index.get(name)
            if isinstance(entry, list) and len(entry) == 2 and entry[1]:
                d["image_processor_type"] = entry[1]  # the class the pipeline instantiates
            return d
    return None


def empty_prompt_embeds(folder: Path, index: dict[str, Any], max_length: int) -> Any:
    """The text encoder's embedding of "" exactly as the Cosmos2 / Wan pipelines compute it."""
    import torch

    from egoworld.weights import load_local

    tokenizer = _component_class(index, "tokenizer").from_pretrained(folder / "tokenizer")
    encoder = load_local(_component_class(index, "text_encoder"), folder / "text_encoder").eval()
    tokens = tokenizer(
        [""],
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        hidden = encoder(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    lengths = tokens.attention_mask.sum(dim=1)
    for i, n in enumerate(lengths.tolist()):  # both pipelines zero the padded positions
        hidden[i, n:] = 0
    return hidden


def load_pipeline_parts(
    folder: str | Path, *, text_max_length: int | None = None, torch_dtype=None
) -> PipelineParts:
    """Load the denoiser, VAE, image encoder, scheduler config (and empty-prompt embedding) of a folder."""
    from egoworld.weights import load_local

    folder = Path(folder)
    name, index = read_model_index(folder)
    family, denoiser_dir, _ = PIPELINES[name]
    try:
        # the denoiser loads straight in `torch_dtype` (a 14B DiT in fp32 needs ~66 GB of host RAM)
        dtype = {} if torch_dtype is None else {"torch_dtype": torch_dtype}
        denoiser = load_local(_component_class(index, denoiser_dir), folder / denoiser_dir, **dtype)
        vae = load_local(_component_class(index, "vae"), folder / "vae")
        image_encoder = None
        if (folder / "image_encoder").is_dir() and index.get("image_encoder") not in (None, [None, None]):
            image_encoder = load_local(_component_class(index, "image_encoder"), folder / "image_encoder")
        scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        processor = _image_processor_config(folder, index)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{folder} ({name}): a component could not be loaded: {err}") from err
    if family == "wan" and getattr(denoiser.config, "image_dim", None):
        # Wan 2.1 i2v: the transformer cross-attends to CLIP features of the image
        for part, present in (("image_encoder", image_encoder is not None), ("image_processor", processor)):
            if not present:
                raise FileNotFoundError(
                    f"{folder} ({name}) is missing {part}/; expected it because the transformer has "
                    f"image_dim={denoiser.config.image_dim} (Wan 2.1 image-to-video)"
                )
    mean = (tuple(processor.get("image_mean", ())) or None) if processor else None
    std = (tuple(processor.get("image_std", ())) or None) if processor else None
    prompt = None
    if family != "svd":
        # both pipelines' default max_sequence_length is 512
        prompt = empty_prompt_embeds(folder, index, text_max_length or 512)
    return PipelineParts(
        family,
        name,
        denoiser,
        vae,
        image_encoder,
        mean,
        std,
        scheduler_config,
        prompt,
        image_processor=processor if family == "wan" else None,
        config_defaults=dict(PIPELINE_CALL_DEFAULTS.get(family, {})),
    )
