"""The model a training run starts from: a diffusers pipeline, an egoworld folder, or random weights.

    init_from = PIPELINE_DIR   model_index.json + unet/ or transformer/ + vae/ + ... (the published
                               SVD-XT, Cosmos-Predict2 or Wan 2.1 i2v/Fun-InP folders, as their
                               pipeline's save_pretrained writes them) -> WorldModel.from_diffusers
    init_from = MODEL_DIR      a folder written by WorldModel.save_pretrained (a run's final/, say)
    init_from = None           WorldModel.build: random weights of `model.preset`; a real-size preset
                               trains only with allow_random_init (a random SVD-XT is rarely what a
                               user meant)

With init_from, the fields of the config's `model:` section that define the network (ARCHITECTURE)
must agree with the imported model — a disagreement is an error, never silently ignored — and every
other field (clip length, resolution, micro-conditioning, noise distribution, sampler defaults) is
taken from the config.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from egoworld.model_config import CONFIG_NAME, WorldModelConfig

logger = logging.getLogger(__name__)

# fields fixed by the weights; `preset` only names the size of randomly initialised models
ARCHITECTURE = ("family", "codec", "action_dim", "state_dim", "encoder", "hidden_dim", "use_image_encoder")
SMALL_PRESETS = ("tiny", "small")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _check_agreement(source: str, model_config: WorldModelConfig, wanted: WorldModelConfig, keys) -> None:
    clash = {k: (getattr(wanted, k), getattr(model_config, k)) for k in keys}
    clash = {k: v for k, v in clash.items() if v[0] != v[1]}
    if clash:
        said = ", ".join(f"model.{k}={v[0]!r} (the model has {v[1]!r})" for k, v in clash.items())
        raise ValueError(f"init_from={source}: the config disagrees with the model it imports: {said}")


def honoured_fields(config: WorldModelConfig) -> dict[str, Any]:
    """The config's fields that are not fixed by the weights (they replace the imported model's)."""
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.name not in ARCHITECTURE and f.name not in ("preset", "extra")
    }


def check_model_source(
    model_cfg: WorldModelConfig, init_from: str | None, *, allow_random_init: bool
) -> None:
    """The cheap checks of where the weights come from, made before any data is read."""
    if not init_from:
        if model_cfg.preset not in SMALL_PRESETS and not allow_random_init:
            raise ValueError(
                f"model.preset={model_cfg.preset!r} is a real-size model and init_from is not set: it would "
                "train from random weights; pass --init-from PIPELINE_DIR (e.g. the published weights, see "
                "docs/real-weights.md) or --allow-random-init if that is what you want"
            )
        return
    folder = Path(init_from)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"init_from={init_from} is not a folder; expected a pipeline or world-model folder"
        )
    if not any((folder / marker).is_file() for marker in ("model_index.json", CONFIG_NAME)):
        raise ValueError(
            f"init_from={init_from} holds neither model_index.json (a diffusers pipeline) nor {CONFIG_NAME} "
            "(a world model written by save_pretrained)"
        )


def _warn_if_rescaled(init_from: str, before, after) -> None:
    """A warning for each dataset whose actions, when a model that already reads actions is
    fine-tuned, reach its action embedding as other numbers than before (`statistics_of` in a
    mixture, or the same data, keeps the scale)."""
    if before is None or after is None:
        return
    for name in before.rescaled_by(after):
        now = after.statistics_for(name)
        logger.warning(
            "init_from=%s: the action statistics of %s (%s) differ from the ones the model was trained "
            "with (%s); its actions now reach it on another scale",
            init_from,
            name,
            _describe(now),
            _describe(before.statistics_for(name)),
        )


def _describe(stats) -> str:
    keys = ("mean", "std") if stats.mode == "meanstd" else ("min", "max")
    return f"{stats.mode} " + ", ".join(
        f"{k} {[round(float(x), 3) for x in getattr(stats, k)]}" for k in keys
    )


def initial_model(model_cfg: WorldModelConfig, init_from: str | None, normalizer, *, allow_random_init: bool):
    """The world model a run starts from (see the module docstring); ValueError on a bad source."""
    from egoworld.pipeline_import import PIPELINES, is_pipeline_folder, read_model_index
    from egoworld.world_model import WorldModel

    check_model_source(model_cfg, init_from, allow_random_init=allow_random_init)
    if not init_from:
        return WorldModel.build(model_cfg, normalizer)

    if is_pipeline_folder(init_from):
        name, _ = read_model_index(init_from)  # a clear error for an unsupported pipeline
        family = PIPELINES[name][0]
        if model_cfg.family != family:
            raise ValueError(
                f"init_from={init_from}: the folder holds a {name} (family {family!r}); the config says "
                f"model.family={model_cfg.family!r}"
            )
        if model_cfg.codec != "vae":
            raise ValueError(f"init_from={init_from}: a pipeline brings its VAE; model.codec must be 'vae'")
        fields = {
            **honoured_fields(model_cfg),
            **{k: getattr(model_cfg, k) for k in ("state_dim", "encoder", "hidden_dim")},
        }
        return WorldModel.from_diffusers(
            init_from,
            action_dim=model_cfg.action_dim,
            normalizer=normalizer,
            extra=dict(model_cfg.extra),
            **fields,
        )

    try:
        model = WorldModel.from_pretrained(init_from)
    except Exception as err:  # noqa: BLE001 - any failure to read the folder is a bad input
        raise ValueError(
            f"init_from={init_from}: cannot load a world model ({type(err).__name__}: {_first_line(err)}); "
            "expected a diffusers pipeline folder (model_index.json) or a folder written by "
            "WorldModel.save_pretrained (egoworld_world_model.json, denoiser/, ...)"
        ) from None
    _check_agreement(init_from, model.config, model_cfg, ARCHITECTURE)
    _warn_if_rescaled(init_from, model.normalizer, normalizer)
    config = dataclasses.replace(model.config, **honoured_fields(model_cfg))
    config.validate()
    rebuilt = WorldModel(config, model.denoiser, model.codec, model.image_encoder, normalizer)
    rebuilt.prompt_embeds = model.prompt_embeds
    return rebuilt
