"""Training checkpoints: a manifest that proves a checkpoint complete, the choice of the newest usable
one, and the EMA saved as safetensors + JSON.

    checkpoints/step-NNNNNNNN/   accelerator state + ema.safetensors/ema.json + model/ +
                                 trainer_state.json + manifest.json (size and sha256 of every file,
                                 written last: a checkpoint without a verifying manifest is never loaded)
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

from egoworld.io_utils import atomic_path

logger = logging.getLogger(__name__)

CKPT_RE = re.compile(r"^step-(\d{8})$")
MANIFEST = "manifest.json"
TRAINER_STATE = "trainer_state.json"
EMA_WEIGHTS, EMA_STATE = "ema.safetensors", "ema.json"


# checkpoints: manifest, verification, selection ------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST
    )


def write_manifest(folder: Path) -> None:
    """Record the size and sha256 of every file under `folder` in `folder/manifest.json` (written last)."""
    files = {
        rel: {"size": (folder / rel).stat().st_size, "sha256": _sha256(folder / rel)}
        for rel in _files(folder)
    }
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps({"format": 1, "files": files}, indent=1))


def verify_checkpoint(folder: Path) -> str | None:
    """None when `folder` is a complete checkpoint whose files match its manifest; else what is wrong."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not a mapping")
    except FileNotFoundError:
        return f"no {MANIFEST} (an incomplete checkpoint)"
    except (ValueError, KeyError, TypeError) as err:
        return f"unreadable {MANIFEST} ({err})"
    if TRAINER_STATE not in files:
        return f"{TRAINER_STATE} is not in the manifest"
    present = set(_files(folder))
    extra = sorted(present - set(files))
    if extra:
        return f"{extra[0]} is not in the manifest (planted or left over)"
    for rel, want in files.items():
        path = folder / rel
        if rel not in present:
            return f"{rel} is missing"
        if not isinstance(want, dict) or not isinstance(want.get("size"), int) or "sha256" not in want:
            return f"the manifest entry of {rel} is malformed"
        size = path.stat().st_size
        if size != want["size"]:
            return f"{rel} has {size} bytes; the manifest says {want['size']} (truncated?)"
        if _sha256(path) != want["sha256"]:
            return f"{rel} does not match its sha256 in the manifest (corrupted)"
    return None


def checkpoint_folders(run_dir: Path) -> list[Path]:
    """Every `checkpoints/step-N` folder, oldest first (verified or not)."""
    ckpts = Path(run_dir) / "checkpoints"
    if not ckpts.is_dir():
        return []
    return sorted(p for p in ckpts.iterdir() if CKPT_RE.match(p.name) and p.is_dir())


def step_of(folder: Path) -> int:
    return int(CKPT_RE.match(folder.name).group(1))


def _world_model_readable(model_dir: Path) -> None:
    from egoworld.actions.normalization import ActionNormalizer

    ActionNormalizer.load(model_dir / "normalization.json")


def newest_usable(
    run_dir: Path, below: int | None = None, check_model=_world_model_readable
) -> tuple[Path | None, list[str]]:
    """(the newest checkpoint under step `below` that verifies, the problems of newer ones).

    `check_model(folder / "model")` raises when the saved model's own files cannot be read (default:
    a world model's `normalization.json`).
    """
    problems = []
    for folder in reversed(checkpoint_folders(run_dir)):
        if below is not None and step_of(folder) >= below:
            continue
        problem = verify_checkpoint(folder)
        if problem is None:
            try:
                read_trainer_state(folder)
                check_model(folder / "model")
            except Exception as err:  # noqa: BLE001 - any unreadable part makes the checkpoint unusable
                problem = f"unreadable ({type(err).__name__}: {_first_line(err)})"
        if problem is None:
            return folder, problems
        logger.warning("skipping checkpoint %s: %s; trying the previous one", folder, problem)
        problems.append(f"{folder.name}: {problem}")
    return None, problems


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint whose manifest verifies; half-written, corrupted or planted ones are skipped."""
    return newest_usable(Path(run_dir))[0]


def read_trainer_state(folder: Path) -> tuple[int, int, int]:
    state = json.loads((folder / TRAINER_STATE).read_text())
    values = tuple(state[k] for k in ("step", "epoch", "batch_in_epoch"))
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ValueError(f"{TRAINER_STATE} holds {state}; expected step, epoch, batch_in_epoch >= 0")
    return values  # type: ignore[return-value]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


# EMA: saved by us as safetensors + JSON (never through Accelerate's pickled custom checkpoints) --------


_EMA_FIELDS = {
    "decay": float,
    "min_decay": float,
    "optimization_step": int,
    "update_after_step": int,
    "use_ema_warmup": bool,
    "inv_gamma": (float, int),
    "power": (float, int),
}


def save_ema(ema, folder: Path) -> None:
    """The EMA's shadow parameters (`ema.safetensors`) and counters/decay (`ema.json`)."""
    from safetensors.torch import save_file

    state = ema.state_dict()
    tensors = {f"shadow.{i:05d}": p.detach().contiguous().cpu() for i, p in enumerate(state["shadow_params"])}
    save_file(tensors, str(folder / EMA_WEIGHTS))
    scalars = {k: state[k] for k in _EMA_FIELDS}
    (folder / EMA_STATE).write_text(json.dumps({**scalars, "num_params": len(tensors)}, indent=1))


def load_ema(ema, folder: Path) -> None:
    """Load what `save_ema` wrote into `ema` (shapes and types checked; raises ValueError on a mismatch)."""
    from safetensors.torch import load_file

    scalars = json.loads((folder / EMA_STATE).read_text())
    for key, kind in _EMA_FIELDS.items():
        value = scalars.get(key)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ValueError(f"{folder / EMA_STATE}: {key}={value!r} is not a {kind}")
    tensors = load_file(str(folder / EMA_WEIGHTS))
    current = ema.shadow_params
    if len(tensors) != len(current) or scalars.get("num_params") != len(current):
        raise ValueError(f"{folder / EMA_WEIGHTS} holds {len(tensors)} tensors; the model has {len(current)}")
    shadow = []
    for i, ref in enumerate(current):
        t = tensors.get(f"shadow.{i:05d}")
        if t is None or t.shape != ref.shape:
            raise ValueError(f"{folder / EMA_WEIGHTS}: tensor {i} is missing or has the wrong shape")
        shadow.append(t.to(device=ref.device, dtype=ref.dtype))
    ema.load_state_dict({**{k: scalars[k] for k in _EMA_FIELDS}, "shadow_params": shadow})
