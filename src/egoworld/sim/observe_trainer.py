"""What `egoworld train` needs to train EgoSim's observation model; `egoworld.train` runs the loop.

A config with an `observation:` section (`egoworld.train_config.ObservationTrainConfig`) trains the
52-channel Wan InP DiT through the one Accelerate trainer (DDP / FSDP / DeepSpeed, mixed precision,
gradient checkpointing, EMA, atomic checkpoints, exact resume). This module supplies its parts:

- the clips (`PreparedClips`: a `egoworld sim prepare` folder, read shard by shard; or the clips
  cut from synthetic tabletop episodes), stacked by `egoworld.sim.clip_tensors.batch_from_clips`,
  with each clip's own prompt embedding when `observation.clip_prompts` is set
  (`egoworld.sim.clip_prompts.PromptCollate`, the prompts embedded once when the data is opened);
- the model (`build_model`: `ObservationModel.from_inp` on a diffusers Wan 2.1 i2v / Fun-InP folder,
  `ObservationModel.from_pretrained` on an observation model, or `ObservationModel.build`), whose
  `forward(batch, generator)` is its own loss (`ObservationModel.loss`: rectified flow on the
  codec's latents, the objective of the base model); the VAE, CLIP and T5 are frozen and only the
  transformer's parameters are trained (one learning-rate group, `lr_base`);
- which checkpoints can be resumed (`newest_usable`) and a validation sample (`validate_sample`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from egoworld.checkpoints import _first_line
from egoworld.checkpoints import newest_usable as checkpoints_newest_usable
from egoworld.sim.clip_tensors import batch_from_clips, to_uint8_video
from egoworld.sim.prepared import (
    CLIP_KEYS,
    MANIFEST,
    check_clip_shape,
    clip_prompts,
    load_shard,
    read_manifest,
)

if TYPE_CHECKING:
    from egoworld.sim.observe import ObservationConfig, ObservationModel
    from egoworld.train_config import TrainConfig

logger = logging.getLogger(__name__)
OBSERVATION_CONFIG = "egoworld_observation.json"  # = egoworld.sim.observe.CONFIG_NAME


# data ------------------------------------------------------------------------------------------------


class PreparedClips(Dataset):
    """The clips of a `egoworld sim prepare` folder, in manifest order, read one shard at a time.

    An item is one clip: `target`, `scene`, `skeleton` uint8 `[T, H, W, 3]` and `mask` bool
    `[T, H, W]` (what `batch_from_clips` stacks), and its `prompt` (str or None; `prompts` lists
    every clip's, from the manifest). The shard of the last item is kept, so a shard is
    decompressed once per visit; with clips of the paper's size, prepare small shards
    (`--clips-per-shard 1` to `4`) so that a random order does not decompress large shards per clip.
    """

    def __init__(self, folder: str | Path, frames: int, height: int, width: int):
        self.folder = Path(folder)
        meta = read_manifest(self.folder)
        check_clip_shape(self.folder, meta, frames, height, width)
        self.index: list[tuple[str, int]] = []
        for shard in meta.get("shards", []):
            name = str(shard["file"])
            if not (self.folder / name).is_file():
                raise FileNotFoundError(f"{self.folder / name} is listed in {MANIFEST} but missing")
            self.index += [(name, i) for i in range(int(shard["clips"]))]
        self.prompts = clip_prompts(meta)  # one per clip, in the order of `index`
        self.manifest = meta
        self._cached: tuple[str | None, list] = (None, [])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        name, j = self.index[i]
        if self._cached[0] != name:
            self._cached = (name, load_shard(self.folder / name))
        clip = self._cached[1][j]
        return {**{k: clip[k] for k in CLIP_KEYS}, "prompt": self.prompts[i]}


def tabletop_clips(
    folder: Path,
    frames: int,
    height: int,
    width: int,
    *,
    stride: int,
    voxel_size: float,
    render: str,
    progress: bool = False,
) -> list[dict[str, np.ndarray]]:
    """Every clip of `frames` frames (starts `stride` apart) of the tabletop episodes in `folder`
    (`progress`: a tqdm bar over the episodes on stderr)."""
    from tqdm.auto import tqdm

    from egoworld.sim.loop import TabletopEpisode, observation_clip
    from egoworld.sim.state import StateConfig

    clips = []
    episodes = sorted(p for p in folder.glob("episode_*") if p.is_dir())
    for ep_dir in tqdm(episodes, desc="cutting clips", unit="episode", disable=not progress):
        ep = TabletopEpisode.load(ep_dir)
        if ep.rgb.shape[1:3] != (height, width):
            raise ValueError(
                f"{ep_dir} has {ep.rgb.shape[1]}x{ep.rgb.shape[2]} frames; the model needs {height}x{width}"
            )
        config = StateConfig(voxel_size=voxel_size)
        for start in range(0, len(ep) - frames + 1, stride):
            clips.append(observation_clip(ep, start, frames, config=config, render_method=render))
    return clips


def is_prepared(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def training_clips(cfg: TrainConfig, config: ObservationConfig, progress: bool = False) -> Dataset:
    """The clips of `observation.data` at the model's clip shape (prepared folder or tabletop episodes)."""
    from egoworld.sim.state import EPISODE_VOXEL_SIZE

    o, folder = cfg.observation, Path(cfg.observation.data)
    shape = (config.num_frames, config.height, config.width)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"observation.data={folder} is not a folder; expected a `egoworld sim prepare` folder or "
            "tabletop episodes (`egoworld worlds generate --task tabletop`)"
        )
    if is_prepared(folder):
        clips: Any = PreparedClips(folder, *shape)
    elif any(p.is_dir() for p in folder.glob("episode_*")):
        voxel = o.voxel_size if o.voxel_size is not None else EPISODE_VOXEL_SIZE
        clips = tabletop_clips(
            folder, *shape, stride=o.clip_stride, voxel_size=voxel, render=o.render, progress=progress
        )
    else:
        raise FileNotFoundError(
            f"observation.data={folder} holds neither {MANIFEST} (`egoworld sim prepare`) nor episode_*/ "
            "folders (`egoworld worlds generate --task tabletop`)"
        )
    if len(clips) == 0:
        raise ValueError(
            f"observation.data={folder} has no clip of {shape[0]} frames (its episodes are shorter); "
            f"expected episodes of at least {shape[0]} frames"
        )
    if len(clips) <= o.val_clips:
        raise ValueError(
            f"observation.data={folder} has {len(clips)} clips of {shape[0]} frames; observation.val_clips="
            f"{o.val_clips} holds out all of them (expected more clips or fewer held out)"
        )
    return clips


def split(clips: Dataset, val_clips: int) -> tuple[Dataset, Dataset | None]:
    """(training clips, the last `val_clips` clips or None)."""
    n = len(clips)
    if not val_clips:
        return clips, None
    return Subset(clips, range(n - val_clips)), Subset(clips, range(n - val_clips, n))


def training_settings(cfg: TrainConfig, clips: Dataset):
    """How the clips' states were made (`egoworld.sim.observe_config.TrainingSettings`), or None."""
    try:
        from egoworld.sim.observe_config import TrainingSettings
    except ImportError:  # an observe_config without recorded settings
        return None
    from egoworld.sim.state import EPISODE_VOXEL_SIZE, StateConfig

    o = cfg.observation
    if isinstance(clips, PreparedClips):
        return dataclasses.replace(
            TrainingSettings.from_prepared(clips.manifest), clip_prompts=o.clip_prompts
        )
    state = StateConfig(voxel_size=o.voxel_size if o.voxel_size is not None else EPISODE_VOXEL_SIZE)
    return TrainingSettings(
        render=o.render,
        voxel_size=state.voxel_size,
        trunc_voxel_multiplier=state.trunc_voxel_multiplier,
        depth_max=state.depth_max,
        fuse_frames=1,
        depth="ground truth",
        data="tabletop episodes",
        clip_prompts=o.clip_prompts,
    )


# the model -------------------------------------------------------------------------------------------


def check_source(cfg: TrainConfig) -> str:
    """Where the weights come from ("inp", "observation" or "random"); cheap checks, before any data.

    Raises FileNotFoundError / ValueError naming what `init_from` holds and what was expected.
    """
    from egoworld.train_config import OBSERVATION_SMALL_PRESETS

    o, src = cfg.observation, cfg.init_from
    if not src:
        if o.preset not in OBSERVATION_SMALL_PRESETS and not cfg.allow_random_init:
            raise ValueError(
                f"observation.preset={o.preset!r} is a real-size model and init_from is not set: it would "
                "train from random weights; pass --init-from WAN_FUN_INP_DIR (a diffusers folder; `egoworld "
                "sim convert-inp` makes one from the original release) or --allow-random-init"
            )
        if o.prompt and not o.text_encoder:
            raise ValueError(
                f"observation.prompt={o.prompt!r} needs observation.text_encoder (a T5/UMT5 folder) to embed "
                "it when the model is built from random weights"
            )
        return "random"
    if o.clip_prompts and not o.text_encoder and (Path(src) / OBSERVATION_CONFIG).is_file():
        raise ValueError(
            f"observation.clip_prompts=true with init_from={src}, an observation model (which holds no text "
            "encoder): set observation.text_encoder to the T5/UMT5 folder its prompt was embedded with"
        )
    folder = Path(src)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"init_from={src} is not a folder; expected a diffusers Wan 2.1 i2v / Fun-InP folder or an "
            "observation model folder"
        )
    if (folder / OBSERVATION_CONFIG).is_file():
        return "observation"
    config = folder / "transformer" / "config.json"
    config = config if config.is_file() else folder / "config.json"
    try:
        raw = json.loads(config.read_text()) if config.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raw = None
    if isinstance(raw, dict) and "dim" in raw and "in_dim" in raw:
        raise ValueError(
            f"init_from={src} holds the original Wan / VideoX-Fun layout ({config.name} with dim, in_dim); "
            f"convert it first: egoworld sim convert-inp {src} --out DIR --components WAN_I2V_DIFFUSERS_DIR"
        )
    if not isinstance(raw, dict) or raw.get("_class_name") != "WanTransformer3DModel":
        what = "a world model" if (folder / "egoworld_world_model.json").is_file() else "no Wan transformer"
        raise ValueError(
            f"init_from={src} holds {what}; expected a diffusers Wan 2.1 i2v / Fun-InP folder "
            f"(transformer/config.json of a WanTransformer3DModel, vae/, ...) or an observation model folder "
            f"({OBSERVATION_CONFIG})"
        )
    return "inp"


def resolved_config(cfg: TrainConfig, source: str) -> ObservationConfig:
    """The `ObservationConfig` to train: the preset's (or the saved model's) with the section's fields."""
    from egoworld.sim.observe_config import ObservationConfig, preset_config

    o = cfg.observation
    if source != "observation":
        return preset_config(o.preset, **o.overrides())
    path = Path(cfg.init_from) / OBSERVATION_CONFIG
    try:
        saved = ObservationConfig(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise ValueError(
            f"init_from={cfg.init_from}: {path.name} is not an observation config ({err})"
        ) from None
    if saved.preset != o.preset:
        raise ValueError(
            f"init_from={cfg.init_from}: the config says observation.preset={o.preset!r}, the model is a "
            f"{saved.preset!r}"
        )
    if saved.prompt != o.prompt:
        raise ValueError(
            f"init_from={cfg.init_from}: observation.prompt={o.prompt!r}, but the model's prompt embedding "
            f"is of {saved.prompt!r} (expected the same prompt)"
        )
    config = dataclasses.replace(saved, **o.overrides())
    config.validate()
    return config


def build_model(
    cfg: TrainConfig,
    source: str,
    config: ObservationConfig,
    prompt_embeds: tuple[torch.Tensor, torch.Tensor | None] | None = None,
) -> ObservationModel:
    """The observation model the run starts from, its DiT in `observation.weights_dtype`, in train mode.

    prompt_embeds: the (prompt, empty prompt) embeddings already computed with the clips' prompts
    (`egoworld.sim.clip_prompts.clip_prompt_embeddings`); None: the model embeds its prompt itself."""
    from egoworld.sim.observe import ObservationModel

    o = cfg.observation
    dtype = getattr(torch, o.weights_dtype)
    torch.manual_seed(cfg.seed)  # random initialisation from the run's seed
    if source == "random":
        model = ObservationModel.build(config, text_encoder=o.text_encoder, prompt_embeds=prompt_embeds)
        if dtype != torch.float32:
            model.transformer.to(dtype)
    elif source == "inp":
        model = ObservationModel.from_inp(
            cfg.init_from,
            config,
            torch_dtype=dtype,
            text_encoder=o.text_encoder,
            image_encoder=o.image_encoder,
            prompt_cache=o.prompt_cache,
            prompt_embeds=prompt_embeds,
        )
    else:
        try:
            loaded = ObservationModel.from_pretrained(cfg.init_from, torch_dtype=dtype)
        except Exception as err:  # noqa: BLE001 - any failure to read the folder is a bad input
            raise ValueError(
                f"init_from={cfg.init_from}: cannot load an observation model ({type(err).__name__}: "
                f"{_first_line(err)})"
            ) from None
        model = ObservationModel(
            config,
            loaded.transformer,
            loaded.codec,
            loaded.image_encoder,
            prompt_embeds=loaded.prompt_embeds,
            empty_prompt_embeds=loaded.empty_prompt_embeds,
            image_processor=loaded.image_processor,
        )
    if cfg.compile:
        model.transformer.compile(backend=cfg.compile)
    if cfg.gradient_checkpointing:
        model.transformer.enable_gradient_checkpointing()
    return model.train()


IMAGE_PATH = (
    "condition_embedder.image_embedder.",
    ".attn2.add_k_proj.",
    ".attn2.add_v_proj.",
    ".attn2.norm_added_k.",
)


def param_groups(cfg: TrainConfig, model: ObservationModel) -> list[dict]:
    """One group: the transformer at `lr_base` (the codec, CLIP and the prompt embedding are frozen).

    A model without a CLIP encoder never passes image features, so the transformer's image path
    (image embedder, image keys/values) gets no gradient: it is frozen too (DDP requires every
    trained parameter to take part in the loss)."""
    if model.image_encoder is None:
        for name, p in model.transformer.named_parameters():
            if any(part in f".{name}" for part in IMAGE_PATH):
                p.requires_grad_(False)
    params = [p for p in model.transformer.parameters() if p.requires_grad]
    return [{"params": params, "lr": cfg.lr_base, "name": "base"}]


class ObservationTask:
    """The observation model's parts for `egoworld.train` (see the module docstring)."""

    collate = staticmethod(batch_from_clips)

    def __init__(self, cfg: TrainConfig, progress: bool = False):
        self.cfg = cfg
        self.progress = progress  # a bar while tabletop episodes are cut into clips
        self.source = "random"
        self.config: ObservationConfig | None = None
        self.clips: Dataset | None = None
        self.model_prompts = None  # (prompt, empty prompt) embeddings made with the clip prompts

    @staticmethod
    def newest_usable(run_dir: Path, below: int | None = None) -> tuple[Path | None, list[str]]:
        return newest_usable(run_dir, below)

    @property
    def num_workers(self) -> int:
        return self.cfg.observation.num_workers

    def datasets(self, accelerator, resume: Path | None) -> tuple[Dataset, Dataset | None, Any]:
        """(training clips, validation clips or None, sampler) — after the cheap checks of the source."""
        from egoworld.train import EpochPermutationSampler

        self.source = check_source(self.cfg)
        self.config = resolved_config(self.cfg, self.source)
        with accelerator.main_process_first():
            self.clips = training_clips(self.cfg, self.config, self.progress)
        if self.cfg.observation.clip_prompts:
            self._embed_clip_prompts(accelerator)
        train_ds, val_ds = split(self.clips, self.cfg.observation.val_clips)
        return train_ds, val_ds, EpochPermutationSampler(len(train_ds), self.cfg.seed)

    def _embed_clip_prompts(self, accelerator) -> None:
        """Embed every distinct clip prompt once (the main process first when a prompt cache lets the
        others read its files) and collate batches with each clip's embedding."""
        import contextlib

        from egoworld.sim.clip_prompts import PromptCollate, clip_prompt_embeddings

        clips = self.clips
        prompts = clips.prompts if isinstance(clips, PreparedClips) else [c.get("prompt") for c in clips]
        first = (
            accelerator.main_process_first()
            if self.cfg.observation.prompt_cache
            else contextlib.nullcontext()
        )
        with first:
            embeddings, self.model_prompts = clip_prompt_embeddings(
                self.cfg, self.source, self.config, prompts, accelerator.device
            )
        self.collate = PromptCollate(embeddings)

    def build(self) -> tuple[ObservationModel, list[dict]]:
        model = build_model(self.cfg, self.source, self.config, self.model_prompts)
        settings = training_settings(self.cfg, self.clips)
        if settings is not None:  # saved with the model: `egoworld sim` uses the same settings
            model.config = dataclasses.replace(model.config, training=settings)
        return model, param_groups(self.cfg, model)

    def validate(self, model: ObservationModel, dataset: Dataset, out: Path, seed: int) -> None:
        validate_sample(model, dataset, out, seed, collate=self.collate)


# checkpoints and validation --------------------------------------------------------------------------


def _observation_model_readable(model_dir: Path) -> None:
    json.loads((model_dir / OBSERVATION_CONFIG).read_text())


def newest_usable(run_dir: Path, below: int | None = None) -> tuple[Path | None, list[str]]:
    """`egoworld.checkpoints.newest_usable` for observation runs (the model is an observation model)."""
    return checkpoints_newest_usable(run_dir, below, check_model=_observation_model_readable)


@torch.no_grad()
def validate_sample(
    model: ObservationModel, dataset: Dataset, out: Path, seed: int, collate=batch_from_clips
) -> None:
    """Generate the first clip of `dataset` from its scene, mask and skeleton (and first frame, when the
    model is conditioned on it; and its own prompt, when `collate` gives "prompt_embeds"); save ground
    truth | prediction side by side as an mp4."""
    from egoworld.data.video import write_video

    batch = {k: v.to(model.device) for k, v in collate([dataset[0]]).items()}
    first = batch["target"][:, 0] if model.config.condition_first_frame else None
    was_training = model.training
    model.eval()
    try:
        pred = model.generate(
            batch["scene"],
            batch["mask"],
            batch["skeleton"],
            first_frame=first,
            seed=seed,
            prompt_embeds=batch.get("prompt_embeds"),
        )
    finally:
        model.train(was_training)
    frames = np.concatenate([to_uint8_video(batch["target"]), to_uint8_video(pred)], axis=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(out, frames, fps=model.config.fps)
