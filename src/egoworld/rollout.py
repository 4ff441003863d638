"""Rollout inputs: any start image at the model's resolution, and actions from files or a script.

    load_image(path, H, W)            -> uint8 [H, W, 3]   (short side resized, then centre-cropped)
    load_actions(source, model)       -> float32 [N, D]    (.npy | .json | .csv | navigation script)

A navigation script is a `;`- or newline-separated list of steps, each `WORD [AMOUNT] [xREPEAT]`:

    forward 0.5m x8; turn_left 15deg x4; strafe_right 0.2m x2; stay x3

Every repetition is one step (one generated frame). Steps become 3-DoF NWM actions in the robot
frame (x forward, y left, yaw counter-clockwise; `egoworld.actions.spaces`):
(dx / spacing, dy / spacing, dyaw in radians), where `spacing` is the dataset's metric waypoint
spacing. Row 0 is zero: it belongs to the start frame (the `WorldModel.rollout` convention).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ACTION_FILE_SUFFIXES = (".npy", ".json", ".csv")

# word -> (kind, sign): "move" steps carry metres along (dx, dy); "turn" steps carry an angle.
SCRIPT_WORDS: dict[str, tuple[str, tuple[float, float, float]]] = {
    "forward": ("move", (1.0, 0.0, 0.0)),
    "backward": ("move", (-1.0, 0.0, 0.0)),
    "strafe_left": ("move", (0.0, 1.0, 0.0)),
    "strafe_right": ("move", (0.0, -1.0, 0.0)),
    "turn_left": ("turn", (0.0, 0.0, 1.0)),
    "turn_right": ("turn", (0.0, 0.0, -1.0)),
    "stay": ("stay", (0.0, 0.0, 0.0)),
}
SCRIPT_ALIASES = {"back": "backward", "left": "turn_left", "right": "turn_right", "wait": "stay"}

_LENGTH_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "": 1.0}
_ANGLE_UNITS = {"deg": math.pi / 180.0, "°": math.pi / 180.0, "rad": 1.0, "": math.pi / 180.0}
_AMOUNT = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([a-z°]*)$")
_REPEAT = re.compile(r"^[x*×](\d+)$")


# images ----------------------------------------------------------------------------------------


def load_image(path: str | Path, height: int, width: int) -> np.ndarray:
    """Any image PIL reads -> uint8 [height, width, 3] RGB.

    The image is scaled so that it covers the target (its short side relative to the target
    fits), then centre-cropped; EXIF orientation is applied, alpha and palettes are dropped.
    Raises FileNotFoundError for a missing file and ValueError for one PIL cannot decode.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    if height <= 0 or width <= 0:
        raise ValueError(f"target size {height}x{width}; expected positive height and width")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img = img.convert("RGB")  # also forces the full decode (truncated files fail here)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{path}: cannot read as an image ({type(err).__name__}: {err})") from err
    w0, h0 = img.size
    out = _cover_and_crop(img, height, width)
    logger.info("start frame %s: %dx%d -> %dx%d", path, w0, h0, width, height)
    return out


def _cover_and_crop(img, height: int, width: int) -> np.ndarray:
    """PIL image -> uint8 [height, width, 3]: scale to cover the target, then centre-crop."""
    from PIL import Image

    w0, h0 = img.size
    scale = max(height / h0, width / w0)
    new_w, new_h = max(width, round(w0 * scale)), max(height, round(h0 * scale))
    if (new_w, new_h) != (w0, h0):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return np.array(img.crop((left, top, left + width, top + height)), dtype=np.uint8)  # writable


def fit_frames(frames_THW3: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [T, H0, W0, 3] -> [T, height, width, 3] with the same resize + crop as `load_image`."""
    from PIL import Image

    frames_THW3 = np.asarray(frames_THW3)
    if frames_THW3.ndim != 4 or frames_THW3.shape[-1] != 3:
        raise ValueError(f"frames have shape {frames_THW3.shape}; expected [T, H, W, 3]")
    if frames_THW3.shape[1:3] == (height, width):
        return frames_THW3.astype(np.uint8, copy=False)
    return np.stack([_cover_and_crop(Image.fromarray(f), height, width) for f in frames_THW3])


# actions ---------------------------------------------------------------------------------------


def _model_action_dim(model) -> int:
    return int(model.config.action_dim)


def model_spacing(model, spacing: float | None = None) -> float:
    """The metric waypoint spacing for script actions: the model's statistics, else `spacing`.

    Raises ValueError when neither is known, when `spacing` is not positive, or when both are
    given and disagree (the model was trained at its own spacing).
    """
    meta: dict[str, Any] = getattr(getattr(model, "normalizer", None), "meta", None) or {}
    stored = meta.get("spacing", meta.get("metric_waypoint_spacing"))
    if spacing is not None and not spacing > 0:
        raise ValueError(f"spacing={spacing}; expected metres per action unit > 0 (e.g. 0.25 for RECON)")
    if stored is None:
        if spacing is None:
            raise ValueError(
                "the model's normalization statistics have no 'spacing'; pass --spacing "
                "(metres per action unit, e.g. 0.25 for RECON)"
            )
        return float(spacing)
    if spacing is not None and not math.isclose(float(stored), float(spacing), rel_tol=1e-6):
        raise ValueError(
            f"--spacing {spacing} disagrees with the model's spacing {stored} (from its statistics); "
            "leave --spacing out"
        )
    return float(stored)


def _parse_amount(token: str, kind: str, where: str) -> float:
    m = _AMOUNT.match(token.lower())
    units = _LENGTH_UNITS if kind == "move" else _ANGLE_UNITS
    if m is None or m.group(2) not in units:
        shown = sorted(u for u in units if u)
        raise ValueError(f"{where}: cannot read amount {token!r}; expected a number with a unit from {shown}")
    return float(m.group(1)) * units[m.group(2)]


def parse_script(script: str, spacing: float) -> np.ndarray:
    """A navigation script -> float32 [1 + steps, 3] NWM actions, row 0 zero (the start frame).

    Translations are divided by `spacing` (metres per action unit), angles are in radians.
    Bare numbers mean metres for moves and degrees for turns.
    """
    if not spacing > 0:
        raise ValueError(f"spacing={spacing}; expected metres per action unit > 0")
    rows: list[np.ndarray] = [np.zeros(3)]
    commands = [c.strip() for c in re.split(r"[;\n]", script) if c.strip()]
    if not commands:
        raise ValueError(f"action script {script!r} has no steps; expected e.g. 'forward 0.5m x8; stay x2'")
    known = sorted(SCRIPT_WORDS)
    for command in commands:
        tokens = command.replace(",", " ").split()
        word = SCRIPT_ALIASES.get(tokens[0].lower(), tokens[0].lower())
        if word not in SCRIPT_WORDS:
            raise ValueError(f"unknown word {tokens[0]!r} in action script step {command!r}; known: {known}")
        kind, sign = SCRIPT_WORDS[word]
        repeat, amount = 1, None
        for token in tokens[1:]:
            rep = _REPEAT.match(token.lower())
            if rep:
                repeat = int(rep.group(1))
            elif amount is None and kind != "stay":
                amount = _parse_amount(token, kind, f"step {command!r}")
            else:
                raise ValueError(
                    f"step {command!r}: unexpected {token!r}; expected '{word} AMOUNT xREPEAT'"
                    if kind != "stay"
                    else f"step {command!r}: unexpected {token!r}; expected 'stay [xREPEAT]'"
                )
        if repeat < 1:
            raise ValueError(f"step {command!r}: repeat x{repeat}; expected at least x1")
        if kind != "stay" and amount is None:
            unit = "m" if kind == "move" else "deg"
            raise ValueError(f"step {command!r}: no amount; expected e.g. '{word} 0.5{unit}'")
        step = np.array(sign, dtype=np.float64) * (amount or 0.0)
        step[:2] /= spacing
        rows.extend([step] * repeat)
    return np.stack(rows).astype(np.float32)


def _read_json(path: Path) -> np.ndarray:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if isinstance(data, dict):
        if "actions" not in data:
            raise ValueError(f"{path}: JSON object has keys {sorted(data)}; expected an 'actions' list")
        data = data["actions"]
    try:
        return np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: actions are not a list of equal-length number lists ({err})") from err


def _read_csv(path: Path) -> np.ndarray:
    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if rows:
        try:
            [float(c) for c in rows[0]]
        except ValueError:
            rows = rows[1:]  # a header line
    try:
        return np.asarray([[float(c) for c in r] for r in rows], dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: every CSV cell must be a number ({err})") from err


def read_action_file(path: str | Path) -> np.ndarray:
    """Actions from .npy, .json (list of lists or {"actions": ...}) or .csv -> float64 array."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"actions file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
        except (ValueError, OSError) as err:
            raise ValueError(f"{path}: cannot read as a numeric .npy array ({err})") from err
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise ValueError(f"{path}: unknown actions file type {suffix!r}; expected one of {ACTION_FILE_SUFFIXES}")


def _looks_like_file(source: str) -> bool:
    s = source.strip()
    return Path(s).suffix.lower() in ACTION_FILE_SUFFIXES or ("/" in s and ";" not in s)


def check_actions(actions: np.ndarray, action_dim: int, where: str) -> np.ndarray:
    """[N, action_dim] finite float32 with N >= 2, else ValueError naming the problem."""
    a = np.asarray(actions)
    if a.ndim == 1 and action_dim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] != action_dim:
        raise ValueError(f"{where}: actions have shape {a.shape}; expected [N, {action_dim}] for this model")
    if a.shape[0] < 2:
        raise ValueError(
            f"{where}: {a.shape[0]} action rows; expected at least 2 (row 0 for the start frame + one step)"
        )
    bad = ~np.isfinite(a)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"{where}: actions contain NaN or Inf (first at row {row}, column {col})")
    return a.astype(np.float32)


def load_actions(source: str | Path, model, spacing: float | None = None) -> np.ndarray:
    """Actions for `model.rollout` -> float32 [N, D] (raw scale; the model normalises them).

    Args:
        source: a .npy / .json / .csv file, or a navigation script (module docstring).
        model: the world model (its `config.action_dim` and normalization statistics are used).
        spacing: metres per action unit for scripts when the model's statistics do not say.
    """
    action_dim = _model_action_dim(model)
    text = str(source)
    if isinstance(source, Path) or Path(text).is_file() or _looks_like_file(text):
        return check_actions(read_action_file(text), action_dim, text)
    if action_dim != 3:
        raise ValueError(
            f"action scripts make 3-DoF navigation actions; this model has action_dim={action_dim} "
            "(give a .npy/.json/.csv file instead)"
        )
    meta = getattr(getattr(model, "normalizer", None), "meta", None) or {}
    if meta.get("action_mode", "delta") != "delta":
        raise ValueError(
            f"action scripts make per-step deltas; this model was trained with "
            f"action_mode={meta['action_mode']!r} (give a .npy/.json/.csv file instead)"
        )
    actions = parse_script(text, model_spacing(model, spacing))
    return check_actions(actions, action_dim, "action script")
