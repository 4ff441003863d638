"""The text prompt of a recorded episode: what the observation model is told the clip shows.

EgoDex (`egoworld.sim.egodex`) keeps an LLM-written description per episode in root attributes of its
HDF5 file; `egodex_prompt` picks the one that applies, as EgoDex's own data loader does:

    llm_type == "reversible" and which_llm_description == "2"  ->  llm_description2
    otherwise                                                  ->  llm_description

(Reversible tasks, e.g. opening and closing a box, are described both ways; `which_llm_description`
says which way this episode went.) A missing attribute means no prompt, never an error; a reversible
episode whose chosen `llm_description2` is missing has no prompt rather than the other direction's.

The plain layout (`egoworld.sim.plain_video`) has an optional `prompt` entry in its npz: a unicode
string (`np.savez(path, ..., prompt="...")`, which numpy loads without pickle).

Attributes may be `str`, `bytes` or `numpy.bytes_` (UTF-8) or a one-element array of them. Anything else
present under one of these names is a `ValueError` naming the file and the key. Surrounding whitespace
is removed; an empty text is no prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MAX_PROMPT_CHARS = 10_000  # far beyond the 512 tokens Wan's UMT5 reads; a larger value is not a caption
EGODEX_KEYS = ("llm_type", "which_llm_description", "llm_description", "llm_description2")
PLAIN_KEY = "prompt"


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {list(value.shape)}"
    return f"{type(value).__name__} {str(value)[:40]!r}"


def as_text(value: Any, where: str) -> str:
    """`value` (str, bytes / numpy.bytes_ in UTF-8, or a one-element array of them) as a str.

    Raises ValueError starting with `where` (e.g. "FILE: attribute 'llm_description'") otherwise."""
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "SUO":
        value = value.reshape(-1)[0]
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{where} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not isinstance(value, str):
        raise ValueError(f"{where} is {_describe(value)}; expected text (a str or UTF-8 bytes)")
    if len(value) > MAX_PROMPT_CHARS:
        raise ValueError(
            f"{where} holds {len(value)} characters; expected a description of at most {MAX_PROMPT_CHARS}"
        )
    return str(value)


def _prompt(text: str | None) -> str | None:
    return (text.strip() or None) if text is not None else None


def egodex_prompt(f, path: Path) -> str | None:
    """The prompt of an open EgoDex HDF5 file `f` (read through `egoworld.data.safe_h5`), or None."""
    from egoworld.data.safe_h5 import h5_attr

    attrs = {}
    for key in EGODEX_KEYS:
        value = h5_attr(f, key, path)
        attrs[key] = None if value is None else as_text(value, f"{path}: attribute {key!r}")
    reversible = (attrs["llm_type"] or "").strip() == "reversible"
    second = (attrs["which_llm_description"] or "").strip() == "2"
    return _prompt(attrs["llm_description2"] if reversible and second else attrs["llm_description"])


def plain_prompt(value: np.ndarray | None, path: Path) -> str | None:
    """The prompt of a plain-layout npz from its `prompt` array (None when the file has none)."""
    if value is None:
        return None
    if value.dtype.kind != "U" or value.size != 1:
        raise ValueError(
            f"{path}: {PLAIN_KEY} is {value.dtype} {list(value.shape)}; expected a unicode string "
            f"(np.savez(..., {PLAIN_KEY}='a description of the episode'))"
        )
    return _prompt(as_text(value, f"{path}: {PLAIN_KEY}"))
