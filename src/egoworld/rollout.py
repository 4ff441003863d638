"""Rollout inputs: any start image at the model's resolution, and actions from files or a script.

    resolve_model_dir(path)           -> (model folder, note)  (a model folder or a training run folder)
    load_image(path, H, W)            -> uint8 [H, W, 3]   (short side resized, then centre-cropped)
    load_actions(source, model)       -> float32 [N, D]    (.npy | .json | .csv | navigation script)
    load_reference_frames(path, N, H, W) -> uint8 [N, H, W, 3]  (a video file or a folder of frames)
    run_rollout(model, image, actions, ...) -> uint8 [N, H, W, 3]  (checked, then `WorldModel.rollout`)

A navigation script is a `;`- or newline-separated list of steps, each `WORD [AMOUNT] [xREPEAT]`:

    forward 0.5m x8; turn_left 15deg x4; strafe_right 0.2m x2; stay x3

Every repetition is one step (one generated frame). Steps become 3-DoF NWM actions in the robot
frame (x forward, y left, yaw counter-clockwise; `egoworld.actions.spaces`):
(dx / spacing, dy / spacing, dyaw in radians), where `spacing` is the dataset's metric waypoint
spacing. Row 0 is zero: it belongs to the start frame (the `WorldModel.rollout` convention).
A rollout has at most `MAX_FRAMES` frames (a script's repetitions included).

`warn_if_unfamiliar(actions, model)` logs one warning when the requested actions reach far outside
the range of the model's training actions (its normalization statistics): e.g. 0.5 m steps for a
model trained on 0.2 m steps. Nothing in this module imports torch.
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

from egoworld.model_config import CONFIG_NAME

logger = logging.getLogger(__name__)

ACTION_FILE_SUFFIXES = (".npy", ".json", ".csv")
MAX_FRAMES = 10_000  # frames of one rollout (start frame + steps): scripts and files beyond are refused
MAX_SAMPLER_STEPS = 1_000  # sampler steps per chunk
UNFAMILIAR_MARGIN = 0.25  # warn beyond the trained [min, max] by this fraction of its range
MODEL_CONFIG_NAME = CONFIG_NAME
CHECKPOINT_RE = re.compile(r"^step-(\d{8})$")  # = egoworld.checkpoints.CKPT_RE

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


# models ----------------------------------------------------------------------------------------


def resolve_model_dir(path: str | Path) -> tuple[Path, str]:
    """The world-model folder to load from `path` -> (folder, note; "" when `path` is the model).

    `path` is a world-model folder (it holds `egoworld_world_model.json`) or a training run folder
    (`egoworld train --run-dir`): its `final/` model, else the model of its newest complete
    checkpoint (`checkpoints/step-NNNNNNNN/model`, written with `trainer_state.json`). Raises
    FileNotFoundError / NotADirectoryError saying what was expected. Reads no weights.
    """
    path = Path(path)
    expected = (
        f"expected a world-model folder (holding {MODEL_CONFIG_NAME}) or a training run folder "
        "(holding final/ or checkpoints/step-NNNNNNNN/model)"
    )
    if not path.exists():
        raise FileNotFoundError(f"model {path} not found; {expected}")
    if not path.is_dir():
        raise NotADirectoryError(f"model {path} is a file; {expected}")
    if (path / MODEL_CONFIG_NAME).is_file():
        return path, ""
    final = path / "final"
    if (final / MODEL_CONFIG_NAME).is_file():
        return final, f"using {final} (the run's final model)"
    ckpts = path / "checkpoints"
    done = []
    if ckpts.is_dir():
        done = sorted(
            p
            for p in ckpts.iterdir()
            if CHECKPOINT_RE.match(p.name)
            and (p / "manifest.json").is_file()  # written last: the checkpoint is complete
            and (p / "model" / MODEL_CONFIG_NAME).is_file()
        )
    if done:
        newest = done[-1] / "model"
        return newest, f"using {newest} (the newest complete checkpoint; the run has no final/ yet)"
    raise FileNotFoundError(f"model {path} holds no world model; {expected}")


def read_model_info(directory: str | Path):
    """What a saved world model is, read from its JSON files without torch or weights.

    Returns an object with `.config` (a checked `WorldModelConfig`) and `.normalizer` (the action
    statistics, or None): enough for `load_actions` and `unfamiliar_actions` to check a request
    before the model is loaded. Raises ValueError for an unreadable or invalid config.
    """
    from types import SimpleNamespace

    from egoworld.actions.normalization import ActionNormalizer
    from egoworld.model_config import WorldModelConfig

    directory = Path(directory)
    cfg_path = directory / MODEL_CONFIG_NAME
    try:
        fields = json.loads(cfg_path.read_text())
        if not isinstance(fields, dict):
            raise TypeError(f"expected a JSON object, got {type(fields).__name__}")
        config = WorldModelConfig(**fields)
        config.validate()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{cfg_path} not found; expected a world-model folder written by save_pretrained"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as err:
        detail = " ".join(str(err).split())[:300]
        raise ValueError(f"{cfg_path}: not a valid world-model config ({detail})") from None
    stats = directory / "normalization.json"
    try:
        normalizer = ActionNormalizer.load(stats) if stats.is_file() else None
    except (TypeError, ValueError) as err:
        raise ValueError(f"{stats}: not valid action statistics ({err})") from None
    return SimpleNamespace(config=config, normalizer=normalizer)


def check_device(device: str) -> str:
    """`device` if torch can use it here, else ValueError listing the devices this machine has."""
    import torch

    kind, _, index = str(device).partition(":")
    available = ["cpu"]
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    available += [f"cuda:{i}" for i in range(n_cuda)]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        available.append("mps")
    xpu = getattr(torch, "xpu", None)
    n_xpu = xpu.device_count() if xpu is not None and xpu.is_available() else 0
    available += [f"xpu:{i}" for i in range(n_xpu)]
    count = {"cpu": 1, "cuda": n_cuda, "mps": int("mps" in available), "xpu": n_xpu}.get(kind)
    if count is None or (index and not index.isdigit()):
        raise ValueError(
            f"device {device!r} is not a torch device name; devices here: {', '.join(available)}"
        )
    if count == 0 or (index and int(index) >= count):
        why = f"{kind.upper()} is not available here" if count == 0 else f"there is no {device}"
        build = "" if kind != "cuda" or torch.version.cuda else f" (torch {torch.__version__} is a CPU build)"
        raise ValueError(f"device {device!r}: {why}{build}; devices here: {', '.join(available)}")
    return str(device)


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


def check_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A start frame as `WorldModel.rollout` takes it: uint8 [height, width, 3], else ValueError."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(
            f"start image is {a.dtype}; expected uint8 [{height}, {width}, 3] with values 0..255 "
            "(egoworld.rollout.load_image gives one from any image file)"
        )
    if a.shape != (height, width, 3):
        raise ValueError(f"start image has shape {a.shape}; expected ({height}, {width}, 3) for this model")
    return a


def load_reference_frames(path: str | Path, frames: int, height: int, width: int) -> np.ndarray:
    """The first `frames` frames of a video file or a folder of PNG/JPG frames -> uint8 [N, H, W, 3].

    Frames are resized and centre-cropped like `load_image`; a folder's frames are taken in the
    natural order of their names (`frame_2.png` before `frame_10.png`), or from its `frames/`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"ground-truth video {path} not found; expected a video file or a folder of frames"
        )
    if path.is_dir():
        from egoworld.metrics.videos import load_video

        video = load_video(path)  # [T, H0, W0, 3]
        have = len(video)
    else:
        from egoworld.data.video import VideoReader

        with VideoReader(path) as reader:
            have = len(reader)
            video = reader.read(range(min(frames, have))) if have >= frames else None
    if have < frames:
        raise ValueError(f"{path} has {have} frames; the rollout has {frames} (start frame + actions)")
    return fit_frames(video[:frames], height, width)


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
        if len(rows) + repeat > MAX_FRAMES:
            raise ValueError(
                f"step {command!r}: the script makes {len(rows) + repeat} frames by here; expected at most "
                f"{MAX_FRAMES} (start frame + steps); split the walk into several rollouts"
            )
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
        from egoworld.io_utils import check_npy_size

        check_npy_size(path, "actions file")
        try:
            return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
        except (ValueError, OSError, EOFError) as err:
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
    if a.shape[0] > MAX_FRAMES:
        raise ValueError(
            f"{where}: {a.shape[0]} action rows; expected at most {MAX_FRAMES} (split into several rollouts)"
        )
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{where}: actions are {a.dtype}; expected real numbers")
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
    actions = parse_script(text, model_spacing(model, spacing))
    return check_actions(actions, action_dim, "action script")


# checks before sampling ------------------------------------------------------------------------


def check_sampling(num_inference_steps: int | None = None, guidance: float | None = None) -> None:
    """ValueError unless steps is None or an integer in [1, MAX_SAMPLER_STEPS] and guidance is None
    or a finite number >= 0 (`WorldModel.rollout` reads 0 steps as "the default" and would sample
    with a NaN guidance)."""
    if num_inference_steps is not None:
        s = num_inference_steps
        if (
            isinstance(s, (bool, np.bool_))
            or not isinstance(s, (int, np.integer))
            or not 1 <= s <= MAX_SAMPLER_STEPS
        ):
            raise ValueError(f"sampler steps {s!r}; expected an integer in [1, {MAX_SAMPLER_STEPS}]")
    if guidance is not None:
        try:
            g = float(guidance)
        except (TypeError, ValueError):
            raise ValueError(f"guidance {guidance!r}; expected a finite number >= 0") from None
        if not (math.isfinite(g) and g >= 0):
            raise ValueError(f"guidance {guidance!r}; expected a finite number >= 0")


_NAV_NAMES = ("forward step dx", "sideways step dy", "turn dyaw")


def unfamiliar_actions(actions: np.ndarray, model, margin: float = UNFAMILIAR_MARGIN) -> str | None:
    """A one-line description of actions far outside the model's training range, else None.

    `actions` are raw (not normalized) [N, D]; row 0 belongs to the start frame and is ignored. A
    value is far outside when it lies beyond the statistics' observed [min, max] by more than
    `margin` × (max - min) of its dimension. Navigation models (D = 3 with a stored spacing) are
    described in metres and degrees.
    """
    norm = getattr(model, "normalizer", None)
    a = np.asarray(actions, dtype=np.float64)
    if norm is None or a.ndim != 2 or a.shape[1] != norm.action_dim or len(a) < 2:
        return None
    steps = a[1:]
    lo, hi = np.asarray(norm.min, np.float64), np.asarray(norm.max, np.float64)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        return None
    slack = margin * np.maximum(hi - lo, 1e-6)
    far = (steps < lo - slack) | (steps > hi + slack)  # [N-1, D]
    if not far.any():
        return None
    meta = norm.meta or {}
    spacing = meta.get("spacing", meta.get("metric_waypoint_spacing"))
    nav = norm.action_dim == 3 and spacing is not None
    parts = []
    for d in np.flatnonzero(far.any(axis=0)):
        col = steps[:, d]
        worst = col[np.argmax(np.maximum(lo[d] - col, col - hi[d]))]
        if nav and d < 2:
            f, unit, name = float(spacing), " m", _NAV_NAMES[d]
        elif nav:
            f, unit, name = 180.0 / math.pi, " deg", _NAV_NAMES[d]
        else:
            f, unit, name = 1.0, "", f"column {d}"
        a, b, w = (float(x * f) + 0.0 for x in (lo[d], hi[d], worst))  # + 0.0: no "-0"
        parts.append(f"{name} reaches {w:.3g}{unit} where training saw {a:.3g}..{b:.3g}{unit}")
    n_far = int(far.any(axis=1).sum())
    data = f" ({meta['dataset']})" if meta.get("dataset") else ""
    return (
        f"{n_far} of {len(steps)} steps are far outside the model's training actions{data}: "
        f"{'; '.join(parts)}; predictions there are unreliable (use steps inside that range)"
    )


def warn_if_unfamiliar(actions: np.ndarray, model) -> str | None:
    """Log `unfamiliar_actions` once as a warning (one line); returns the message or None."""
    message = unfamiliar_actions(actions, model)
    if message:
        logger.warning(message)
    return message


def load_state(path: str | Path | None, state_dim: int | None) -> np.ndarray | None:
    """The robot state at the start frame for a model with `state_dim` (Eq. 6): a .npy or .json
    vector -> float32 [state_dim]; None when the model has no state. ValueError when the file and
    the model disagree."""
    if state_dim is None:
        if path is not None:
            raise ValueError(f"--state {path}: this model takes no state (its state_dim is None)")
        return None
    if path is None:
        raise ValueError(
            f"this model needs the start state: pass --state FILE (.npy or .json, {state_dim} numbers)"
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"--state {path}: not found; expected a .npy or .json file of {state_dim} numbers"
        )
    try:
        if path.suffix.lower() == ".json":
            state = np.asarray(json.loads(path.read_text()), dtype=np.float32)
        else:
            from egoworld.io_utils import check_npy_size

            check_npy_size(path, "--state")
            state = np.load(path, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError, TypeError, EOFError) as err:
        raise ValueError(f"--state {path}: not a readable vector of numbers ({err})") from err
    if state.shape != (state_dim,):
        raise ValueError(f"--state {path} has shape {list(state.shape)}; expected [{state_dim}]")
    if not np.isfinite(state).all():
        raise ValueError(f"--state {path} holds NaN or Inf; expected finite numbers")
    return state


def run_rollout(
    model,
    image: np.ndarray,
    actions: np.ndarray,
    *,
    state: np.ndarray | None = None,
    num_inference_steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Check the request, warn about unfamiliar actions, then `model.rollout` -> uint8 [N, H, W, 3].

    image: uint8 [H, W, 3] at the model's size; actions: raw float [N, D] (row 0: the start frame).
    """
    c = model.config
    check_image(image, c.height, c.width)
    check_sampling(num_inference_steps, guidance)
    actions = check_actions(actions, int(c.action_dim), "actions")
    warn_if_unfamiliar(actions, model)
    return model.rollout(
        image,
        actions,
        state,
        num_inference_steps=num_inference_steps,
        guidance=guidance,
        seed=seed,
        progress=progress,
    )
