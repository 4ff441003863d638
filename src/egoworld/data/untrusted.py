"""Limits and helpers for reading dataset files that may come from anyone.

A dataset folder is untrusted input: a tiny file can declare millions of frames, a JSON file can
nest ten thousand levels deep, a template in metadata can point outside the folder. Readers check
sizes and declared shapes against the limits below *before* reading or allocating, and every path
built from metadata must resolve inside the dataset folder. Each refusal is one `ValueError` line
naming the file, the offending value and what was expected. The limits are module constants; a
user with an unusually large (trusted) dataset can raise them:

    import egoworld.data.untrusted as u
    u.MAX_H5_FRAMES = 10_000_000
"""

from __future__ import annotations

import json
import math
import os
import string
from pathlib import Path
from typing import Any

MAX_PICKLE_BYTES = 64 * 2**20  # traj_data.pkl: a 1M-frame trajectory of float64 is 24 MB
MAX_PICKLE_OPCODES = 2_000_000  # pickle instructions executed
MAX_PICKLE_ELEMENTS = 8_000_000  # items in the loaded value, shared references counted every time
MAX_PICKLE_DEPTH = 64  # nesting of lists/dicts/tuples
MAX_JSON_BYTES = 16 * 2**20  # meta/info.json, metadata*.json, egoworld_world.json
MAX_H5_FRAMES = 100_000  # frames declared by one HDF5 trajectory (55 min at 30 Hz)
MAX_H5_COMPRESSION = 1000  # declared bytes / stored bytes of one HDF5 dataset (beyond: implausible)
MAX_IMAGE_SIDE = 8192  # pixels, for JPEG/PNG headers, HDF5 image arrays and video streams
MAX_VIDEO_FRAMES = 10_000_000  # frames a video header may declare
MAX_PARQUET_ROWS = 50_000_000  # rows declared by one parquet file
MAX_PARQUET_EXPANSION = 1000  # declared uncompressed bytes / file bytes of one parquet file


def check_file_size(path: Path, limit: int, what: str) -> int:
    """Size of `path` in bytes; ValueError when it is larger than `limit`."""
    size = path.stat().st_size
    if size > limit:
        raise ValueError(
            f"{path}: {what} is {size} bytes; at most {limit} bytes are read "
            "(raise egoworld.data.untrusted limits for a trusted file)"
        )
    return size


def read_json(path: str | Path, *, limit: int | None = None) -> Any:
    """Parse a small JSON file; ValueError naming the file when it is too big, not UTF-8, not
    JSON, or nested too deeply for the parser."""
    path = Path(path)
    check_file_size(path, MAX_JSON_BYTES if limit is None else limit, "the JSON file")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply; expected a small metadata object") from None


def read_json_object(path: str | Path) -> dict[str, Any]:
    """`read_json` that must give a JSON object (dict)."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def inside(root: str | Path, path: str | Path, what: str) -> Path:
    """`path` itself when it resolves (symlinks followed) inside `root`; else a ValueError naming
    `what` (e.g. the metadata key the path was built from) and the path."""
    base, real = Path(root).resolve(), Path(path).resolve()
    if not real.is_relative_to(base):
        raise ValueError(
            f"{what}: {str(path)!r} resolves to {str(real)!r}, outside the dataset folder {str(base)!r}; "
            "expected a path inside it"
        )
    return Path(path)


def format_path_template(template: Any, values: dict[str, Any], where: str) -> str:
    """`template.format(**values)` for a path template from metadata, refusing unknown fields,
    attribute/index access and nested format specs (one ValueError line naming the field)."""
    if not isinstance(template, str) or not template:
        raise ValueError(f"{where} must be a non-empty string template, got {template!r}")
    known = ", ".join(sorted(values))
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"{where} {template!r} is not a valid template ({err})") from None
    for _, name, spec, _ in fields:
        if name is None:
            continue
        if name not in values:
            raise ValueError(f"{where} {template!r} uses unknown field {{{name}}}; known fields: {known}")
        if spec and "{" in spec:
            raise ValueError(f"{where} {template!r} nests a field in the format of {{{name}}}; not allowed")
    try:
        return template.format(**values)
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise ValueError(f"{where} {template!r} cannot be filled with {values} ({err})") from None


def positive_number(value: Any, name: str, where: str, *, upper: float | None = None) -> float:
    """A finite number > 0 (and <= `upper`), else ValueError naming `name`."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = number and math.isfinite(value) and value > 0
    if not ok or (upper is not None and value > upper):
        bound = f" and <= {upper}" if upper is not None else ""
        raise ValueError(f"{where}: {name} is {value!r}; expected a finite number > 0{bound}")
    return float(value)


def count(value: Any, name: str, where: str, *, lower: int = 0, upper: int | None = None) -> int:
    """An integer in [lower, upper] (JSON ints only; bools and floats refused), else ValueError."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lower
    if not ok or (upper is not None and value > upper):
        bound = f"in [{lower}, {upper}]" if upper is not None else f">= {lower}"
        raise ValueError(f"{where}: {name} is {value!r}; expected an integer {bound}")
    return int(value)


def same_or_inside(out: str | Path, src: str | Path) -> bool:
    """Whether writing `out` would touch `src`: the same file, or a path inside the folder `src`."""
    out, src = Path(out), Path(src)
    if out.exists() and src.exists():
        try:
            if os.path.samefile(out, src):
                return True
        except OSError:
            pass
    real_out, real_src = out.resolve(), src.resolve()
    return real_out == real_src or (src.is_dir() and real_out.is_relative_to(real_src))


def refuse_output_over_input(out: str | Path, src: str | Path, flag: str = "output") -> None:
    """ValueError when `out` is `src` or lies inside it (inputs are never overwritten)."""
    if same_or_inside(out, src):
        raise ValueError(
            f"{flag} {str(out)!r} is the input {str(src)!r} or inside it; choose a path outside the "
            "dataset (nothing was written)"
        )


def image_size_of(data: bytes, kind: str = "image") -> tuple[int, int]:
    """(width, height) from a JPEG/PNG header without decoding. Raises a ValueError whose message is
    the reason only (callers prefix the file): the header is unreadable, or the image is larger than
    MAX_IMAGE_SIDE on a side."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
    except Image.DecompressionBombError as err:
        raise ValueError(
            f"{kind} header declares too many pixels ({err}); expected at most {MAX_IMAGE_SIDE} a side"
        ) from None
    except Exception as err:  # PIL raises many types for damaged headers
        raise ValueError(f"corrupt or unreadable {kind} ({type(err).__name__}: {err})") from None
    if not (0 < w <= MAX_IMAGE_SIDE and 0 < h <= MAX_IMAGE_SIDE):
        raise ValueError(f"{kind} header declares {w}x{h} pixels; expected at most {MAX_IMAGE_SIDE} a side")
    return w, h
