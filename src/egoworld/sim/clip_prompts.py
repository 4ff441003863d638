"""Per-clip text prompts in training (`observation.clip_prompts`): each clip conditioned on its own.

Fun-InP was trained on captioned videos, each with its own caption embedded by the frozen UMT5; real
egocentric clips carry a description of their episode (`egoworld.sim.episode_prompts`, kept per clip
by `egoworld sim prepare`). With `observation.clip_prompts: true` the trainer
(`egoworld.sim.observe_trainer`):

1. embeds every distinct clip prompt once, before the first step, with the text encoder
   (`observation.text_encoder`, or the `text_encoder/` of an `init_from` Wan folder) through the prompt
   cache of `egoworld.sim.prompts.cached_prompts`: one load of the encoder for all of them, together
   with the model's own prompt (and the empty prompt that `text_dropout` needs) when the model is
   built in this run (`clip_prompt_embeddings`);
2. keeps the embeddings without their zero padding (`trim`: every position after the prompt's tokens
   is zero, so padding them back is exact) in a `PromptEmbeddings` table;
3. collates each batch with `PromptCollate`: `batch_from_clips` plus "prompt_embeds" `[B, L, text_dim]`,
   the clip's prompt's embedding, or the model's own prompt's (`config.prompt`) for a clip without one.
   `ObservationModel.loss` reads it from the batch; `text_dropout` then swaps in the empty prompt's
   embedding per clip, as with one prompt.

The embeddings are a deterministic function of the prompts and the encoder, so they are not in the
checkpoints: a resumed run embeds them again (or reads them from `observation.prompt_cache`). The
saved model keeps its single prompt (what `egoworld sim` rolls out with; `--prompt` changes it) and
records `training.clip_prompts`.

Memory: one float32 embedding of n tokens x text_dim per distinct prompt (UMT5-XXL: 16 KiB a token,
about 0.5-1 MiB for a one-sentence description), held by every training process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from egoworld.sim.clip_tensors import batch_from_clips

if TYPE_CHECKING:
    from egoworld.sim.observe_config import ObservationConfig
    from egoworld.train_config import TrainConfig

logger = logging.getLogger(__name__)


def trim(embeds_1LD: torch.Tensor) -> torch.Tensor:
    """`[1, L, D]` → `[n, D]`: the embedding up to its last non-zero position (at least one)."""
    nonzero = embeds_1LD[0].abs().amax(-1) > 0  # [L]
    n = int(nonzero.nonzero().max()) + 1 if nonzero.any() else 1
    return embeds_1LD[0, :n].clone()


def pad(embeds_nD: torch.Tensor, length: int) -> torch.Tensor:
    """`[n, D]` → `[length, D]` with zeros after the n positions (undoes `trim` exactly)."""
    out = embeds_nD.new_zeros(length, embeds_nD.shape[1])
    out[: len(embeds_nD)] = embeds_nD
    return out


class PromptEmbeddings:
    """Text embeddings of the training clips' prompts, looked up per batch.

    Args:
        default: `[1, L, D]`, the model's own prompt embedding (clips without a prompt get it).
        table: {prompt: `[n, D]` embedding without its zero padding (`trim`), n <= L}.
    """

    def __init__(self, default: torch.Tensor, table: dict[str, torch.Tensor]):
        if default.ndim != 3 or default.shape[0] != 1:
            raise ValueError(f"default prompt embedding of shape {list(default.shape)}; expected [1, L, D]")
        self.default = default.detach().float().cpu()
        L, D = self.default.shape[1:]
        for prompt, e in table.items():
            if e.ndim != 2 or e.shape[0] > L or e.shape[1] != D:
                raise ValueError(
                    f"the embedding of the clip prompt {prompt[:60]!r} has shape {list(e.shape)}; expected "
                    f"[n <= {L}, {D}] like the model's prompt embedding (the same text encoder and length)"
                )
        self.table = {p: e.detach().float().cpu() for p, e in table.items()}

    def __len__(self) -> int:
        return len(self.table)

    def lookup(self, prompts: list[str | None]) -> torch.Tensor:
        """`[B, L, D]`: each prompt's embedding (zero-padded back to L), the default for None."""
        L = self.default.shape[1]
        rows = [self.default[0] if p is None else pad(self.table[p], L) for p in prompts]
        return torch.stack(rows)


class PromptCollate:
    """`batch_from_clips` plus "prompt_embeds" `[B, L, D]` from each clip's "prompt" (str or None)."""

    def __init__(self, embeddings: PromptEmbeddings):
        self.embeddings = embeddings

    def __call__(self, clips: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = batch_from_clips(clips)
        batch["prompt_embeds"] = self.embeddings.lookup([c.get("prompt") for c in clips])
        return batch


def embed_prompts(
    folder: str | Path,
    prompts: list[str | None],
    max_length: int,
    *,
    leading: list[str] | tuple[str, ...] = (),
    cache_dir: str | Path | None = None,
    torch_dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """(the `leading` prompts' embeddings `[1, L, D]`, {distinct prompt: trimmed `[n, D]`}) of
    `prompts` (None entries skipped), from one call of `cached_prompts` (one load of the encoder)."""
    from egoworld.sim.prompts import cached_prompts

    distinct = list(dict.fromkeys(p for p in prompts if p is not None))
    leading = list(leading)
    embeds = cached_prompts(
        folder,
        [*leading, *distinct],
        max_length,
        cache_dir=cache_dir,
        torch_dtype=torch_dtype,
        device=device,
        keep=trim,  # many prompts: only their tokens are kept
    )
    head = [pad(e, max_length)[None] for e in embeds[: len(leading)]]
    return head, dict(zip(distinct, embeds[len(leading) :]))


def text_encoder_folder(cfg: TrainConfig, source: str) -> Path | None:
    """The T5/UMT5 folder of a run: `observation.text_encoder`, else an `init_from` Wan folder's."""
    if cfg.observation.text_encoder:
        return Path(cfg.observation.text_encoder)
    return Path(cfg.init_from) if source == "inp" and cfg.init_from else None


def model_prompts(config: ObservationConfig) -> list[str]:
    """The prompts a model built in this run embeds: its prompt, and the empty one when text dropout
    needs it (as `ObservationModel.build` / `from_inp`)."""
    return [config.prompt, *([""] if config.prompt and config.text_dropout > 0 else [])]


def saved_prompt_embeds(folder: Path) -> torch.Tensor:
    """The prompt embedding `[1, L, D]` of a saved observation model, refused when it was made without
    a text encoder (all zeros: clip prompts would then be embedded at its placeholder length)."""
    from egoworld.sim.prompts import PROMPT_FILE, load_prompt_embeds

    if not (folder / PROMPT_FILE).is_file():
        raise FileNotFoundError(
            f"init_from={folder} has no {PROMPT_FILE}; expected an observation model folder"
        )
    embeds = load_prompt_embeds(folder / PROMPT_FILE)[0]
    if not embeds.any():
        raise ValueError(
            f"init_from={folder} was built without a text encoder (its prompt embedding is zeros of "
            f"{embeds.shape[1]} tokens); observation.clip_prompts needs a model whose prompt was embedded "
            "by a T5/UMT5 encoder"
        )
    return embeds


def clip_prompt_embeddings(
    cfg: TrainConfig,
    source: str,
    config: ObservationConfig,
    prompts: list[str | None],
    device: str | torch.device | None = None,
) -> tuple[PromptEmbeddings, tuple[torch.Tensor, torch.Tensor | None] | None]:
    """(the clips' `PromptEmbeddings`, the (prompt, empty prompt) embeddings of the model to build or
    None) for a run whose weights come from `source` ("random", "inp" or "observation").

    A model built in this run (random or `from_inp`) gets its prompt embedded in the same load as the
    clips' (pass the pair to `ObservationModel.build` / `from_inp`); a saved observation model keeps
    its own, and the clips' prompts are embedded at its length. `device`: where the encoder runs.
    """
    o = cfg.observation
    folder = text_encoder_folder(cfg, source)
    if folder is None:
        raise ValueError(
            "observation.clip_prompts=true needs a text encoder: set observation.text_encoder (a T5/UMT5 "
            "folder, e.g. a diffusers Wan folder's text_encoder/ + tokenizer/)"
        )
    dtype = getattr(torch, o.weights_dtype) if source == "inp" else None  # T5's dtype in from_inp
    if source == "observation":
        default = saved_prompt_embeds(Path(cfg.init_from))
        _, table = embed_prompts(
            folder, prompts, default.shape[1], cache_dir=o.prompt_cache, torch_dtype=dtype, device=device
        )
        pair = None
    else:
        lead = model_prompts(config)
        head, table = embed_prompts(
            folder,
            prompts,
            config.text_max_length,
            leading=lead,
            cache_dir=o.prompt_cache,
            torch_dtype=dtype,
            device=device,
        )
        default, pair = head[0], (head[0], head[1] if len(head) > 1 else None)
    given = sum(p is not None for p in prompts)
    logger.info(
        "clip prompts: %d of %d clips have one (%d distinct), embedded with %s",
        given,
        len(prompts),
        len(table),
        folder,
    )
    if given == 0:
        logger.warning("observation.clip_prompts: no clip has a prompt; every clip uses the model's prompt")
    return PromptEmbeddings(default, table), pair
