"""Prompt embeddings from a frozen T5 / UMT5 encoder in a local folder, computed once and cached.

Wan 2.1 (and Fun-InP) read a text embedding `[1, L, D]` (L = 512): the encoder's last hidden state
of the tokenised prompt (padded to L, truncated), with every position after the prompt's tokens set
to zero — what `WanImageToVideoPipeline.encode_prompt` computes (and what the original Wan code gets
by padding the trimmed embedding with zeros). The prompt is cleaned first as the pipeline does
(`ftfy.fix_text` when ftfy is installed, HTML unescaping, whitespace collapsed).

The encoder is loaded only to embed the prompt: the embedding is kept by the observation model and
saved with it (`PROMPT_FILE`), so T5 is never loaded again for that model, and it is never trained.
When the model is trained with caption dropout (`ObservationConfig.text_dropout`), the empty
prompt's embedding is computed in the same load (`cached_prompts`) and saved beside it (`EMPTY_KEY`).
`cached_prompt_embeds` also keeps one file per (encoder, prompt, length) in a cache folder, so a
second `from_inp` of the same weights does not load the 5.7 B-parameter UMT5-XXL again. Training
with per-clip prompts (`egoworld.sim.clip_prompts`) embeds every clip's prompt through the same
`cached_prompts`, in one load of the encoder.

Folders: a diffusers pipeline folder (with `text_encoder/` and `tokenizer/`) or a folder holding
both directly (`config.json` of a `UMT5EncoderModel` / `T5EncoderModel` and the tokenizer files).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

PROMPT_FILE = "prompt_embeds.safetensors"
EMPTY_KEY = "empty_prompt_embeds"
TEXT_ENCODERS = ("UMT5EncoderModel", "T5EncoderModel")


def clean_prompt(text: str) -> str:
    """The Wan pipelines' prompt cleaning (ftfy only when it is installed: it repairs mojibake)."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def text_encoder_folders(folder: str | Path) -> tuple[Path, Path]:
    """(encoder folder, tokenizer folder) of a pipeline folder or of a folder holding both."""
    folder = Path(folder)
    if (folder / "text_encoder" / "config.json").is_file():
        return folder / "text_encoder", folder / "tokenizer"
    if (folder / "config.json").is_file():
        return folder, folder
    raise FileNotFoundError(
        f"no T5/UMT5 text encoder at {folder}: expected {folder / 'text_encoder' / 'config.json'} and "
        f"{folder / 'tokenizer'}/ (a diffusers Wan pipeline folder) or {folder / 'config.json'} with the "
        "tokenizer files beside it; nothing is downloaded"
    )


def load_text_encoder(folder: str | Path, torch_dtype: torch.dtype | None = None):
    """(encoder, tokenizer) from a local folder, the encoder frozen and in eval mode."""
    import transformers
    from transformers import AutoTokenizer

    from egoworld.weights import load_local

    encoder_dir, tokenizer_dir = text_encoder_folders(folder)
    try:
        arch = (json.loads((encoder_dir / "config.json").read_text()).get("architectures") or [None])[0]
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{encoder_dir / 'config.json'} is not a transformers config ({err})") from err
    if arch not in TEXT_ENCODERS:
        raise ValueError(
            f"{encoder_dir} holds a {arch}; expected one of {', '.join(TEXT_ENCODERS)} (Wan's UMT5 encoder)"
        )
    if not tokenizer_dir.is_dir():
        raise FileNotFoundError(f"no tokenizer at {tokenizer_dir}; expected the T5 tokenizer files there")
    dtype = {} if torch_dtype is None else {"dtype": torch_dtype}
    encoder = load_local(getattr(transformers, arch), encoder_dir, **dtype).eval().requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    return encoder, tokenizer


@torch.no_grad()
def encode_prompt(encoder, tokenizer, prompt: str, max_length: int = 512) -> torch.Tensor:
    """The prompt's embedding `[1, max_length, D]` (float32), padded positions zero, as the pipeline."""
    tokens = tokenizer(
        [clean_prompt(prompt)],
        padding="max_length",
        max_length=int(max_length),
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    device = next(encoder.parameters()).device
    hidden = encoder(
        tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device)
    ).last_hidden_state
    length = int(tokens.attention_mask.gt(0).sum())
    hidden = hidden.float().cpu().clone()
    hidden[:, length:] = 0
    return hidden


def _fingerprint(folder: Path) -> str:
    """A digest of the encoder's and tokenizer's configs and file names/sizes (not their contents)."""
    encoder_dir, tokenizer_dir = text_encoder_folders(folder)
    h = hashlib.sha256()
    for d in (encoder_dir, tokenizer_dir):
        for p in sorted(d.iterdir()) if d.is_dir() else ():
            if p.is_file():
                h.update(f"{p.name}:{p.stat().st_size}\n".encode())
                if p.suffix == ".json" and p.stat().st_size < 1 << 20:
                    h.update(p.read_bytes())
    return h.hexdigest()


def save_prompt_embeds(
    path: Path, embeds: torch.Tensor, prompt: str, key: str = "", empty: torch.Tensor | None = None
) -> None:
    """Write `[1, L, D]` embeddings with the prompt (and a cache key) as safetensors metadata;
    `empty`: also the empty prompt's embedding (what text dropout trains with)."""
    from safetensors.torch import save_file

    tensors = {"prompt_embeds": embeds.contiguous().cpu()}
    if empty is not None:
        tensors[EMPTY_KEY] = empty.contiguous().cpu()
    save_file(tensors, path, metadata={"prompt": prompt, "key": key})


def load_prompt_embeds(path: Path) -> tuple[torch.Tensor, dict[str, str]]:
    """(embeddings `[1, L, D]`, metadata) of a file written by `save_prompt_embeds`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        if "prompt_embeds" not in f.keys():
            raise ValueError(f"{path} holds no prompt_embeds tensor; expected a file written by egoworld")
        return f.get_tensor("prompt_embeds").float().clone(), dict(f.metadata() or {})


def load_empty_prompt_embeds(path: Path) -> torch.Tensor | None:
    """The empty prompt's embedding `[1, L, D]` saved beside the prompt's, or None (not saved)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor(EMPTY_KEY).float().clone() if EMPTY_KEY in f.keys() else None


def cached_prompt_embeds(
    folder: str | Path,
    prompt: str,
    max_length: int = 512,
    *,
    cache_dir: str | Path | None = None,
    torch_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The prompt's embedding `[1, L, D]`; with `cache_dir`, read from / written to a file there.

    The cache file is named by a digest of the encoder folder (configs, file names and sizes), the
    prompt and `max_length`; it is written atomically, and a file whose metadata does not match is
    recomputed.
    """
    return cached_prompts(folder, [prompt], max_length, cache_dir=cache_dir, torch_dtype=torch_dtype)[0]


def cached_prompts(
    folder: str | Path,
    prompts: list[str],
    max_length: int = 512,
    *,
    cache_dir: str | Path | None = None,
    torch_dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    keep: Callable[[torch.Tensor], Any] | None = None,
) -> list[Any]:
    """The embeddings `[1, L, D]` of several prompts (`cached_prompt_embeds` each), the encoder loaded
    at most once: only when some prompt is not in the cache.

    device: where the encoder runs (None: the CPU); the embeddings come back on the CPU in float32.
    keep: applied to each embedding as it is read or computed; the list holds what it returns (e.g. the
        embedding without its zero padding, so that many prompts fit in memory).
    """
    keep = keep or (lambda e: e)
    folder = Path(folder)
    fingerprint = _fingerprint(folder)
    keys = [
        hashlib.sha256(f"{fingerprint}\n{max_length}\n{prompt}".encode()).hexdigest()[:24]
        for prompt in prompts
    ]
    paths = [None if cache_dir is None else Path(cache_dir) / f"prompt-{key}.safetensors" for key in keys]
    out: list[torch.Tensor | None] = []
    for prompt, key, path in zip(prompts, keys, paths):
        embeds = None
        if path is not None and path.is_file():
            embeds, meta = load_prompt_embeds(path)
            if not (
                meta.get("key") == key and meta.get("prompt") == prompt and embeds.shape[1] == max_length
            ):
                embeds = None
        out.append(None if embeds is None else keep(embeds))
    if all(e is not None for e in out):
        return out  # type: ignore[return-value]
    encoder, tokenizer = load_text_encoder(folder, torch_dtype)
    if device is not None:
        encoder.to(device)
    for i, (prompt, key, path) in enumerate(zip(prompts, keys, paths)):
        if out[i] is not None:
            continue
        embeds = encode_prompt(encoder, tokenizer, prompt, max_length)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            save_prompt_embeds(tmp, embeds, prompt, key)
            tmp.replace(path)
        out[i] = keep(embeds)
    del encoder
    return out  # type: ignore[return-value]
