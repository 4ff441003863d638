"""Perceptual metrics at 224×224 (NWM / EgoWM protocol): LPIPS (AlexNet) and DreamSim (ensemble).

Nothing is downloaded. LPIPS's small linear heads ship inside the `lpips` package; its AlexNet
backbone is a torchvision `alexnet` state dict read from a local file. DreamSim loads from a
local cache folder filled beforehand by the `dreamsim` package. Inputs are uint8 `[T, H, W, 3]`
videos; outputs are per-frame distances `[T]` (lower is more similar).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from egoworld.errors import EgoworldError
from egoworld.metrics.pixel import EVAL_SIZE, resize_video

logger = logging.getLogger(__name__)

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet (weights="IMAGENET1K_V1")
ALEXNET_URL = f"https://download.pytorch.org/models/{ALEXNET_FILE}"
ALEXNET_HOWTO = (
    f"download {ALEXNET_URL} on a machine with network (torchvision saves the same file when "
    "`torchvision.models.alexnet(weights='IMAGENET1K_V1')` runs) and put it at {where}, or pass any "
    "path with --alexnet FILE"
)


def torch_hub_dir() -> Path:
    """`torch.hub.get_dir()` without importing torch: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub,
    else ~/.cache/torch/hub."""
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def default_alexnet_path() -> Path:
    """Where torchvision keeps the AlexNet weights, and where LPIPS looks when --alexnet is not given."""
    return torch_hub_dir() / "checkpoints" / ALEXNET_FILE


def find_alexnet(alexnet_path: str | Path | None = None) -> Path:
    """The AlexNet weights file for LPIPS: `alexnet_path`, else torch hub's cached copy.

    Raises FileNotFoundError saying which file to get and where to put it. Does not import torch.
    """
    default = default_alexnet_path()
    if alexnet_path is not None:
        path = Path(alexnet_path)
        if not path.is_file():
            where = f"{path}" if not path.is_dir() else f"{path} (a folder; expected the file)"
            raise FileNotFoundError(
                f"AlexNet weights not found at {where}; LPIPS needs {ALEXNET_FILE}: "
                + ALEXNET_HOWTO.format(where=default)
            )
        return path
    if default.is_file():
        return default
    raise FileNotFoundError(
        f"LPIPS needs AlexNet weights (torchvision's ImageNet {ALEXNET_FILE}), not found at {default}; "
        + ALEXNET_HOWTO.format(where=default)
    )


def _to_tensor(frames: np.ndarray, size: int):
    import torch

    x = torch.from_numpy(resize_video(frames, size)).permute(0, 3, 1, 2)  # [T, 3, S, S] in [0, 1]
    return x


def _read_state_dict(path: Path) -> dict:
    """A torch state dict from `path` (tensors only, no pickled code), else ValueError naming the file."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch reports a bad file with zip, pickle or runtime errors
        detail = " ".join(str(err).split())[:200]
        raise ValueError(
            f"{path}: cannot read as a torch state dict ({type(err).__name__}: {detail}); expected "
            f"torchvision's {ALEXNET_FILE}"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {type(state).__name__}; expected a state dict ({ALEXNET_FILE})")
    return state


class LPIPSMetric:
    """LPIPS v0.1 with the AlexNet backbone (as NWM), on frames resized to 224×224.

    Args:
        alexnet_path: torchvision `alexnet` state dict (`features.*` keys); default: torch hub's
            cache (`default_alexnet_path()`, where torchvision saves it). Needed unless
            `random_backbone`.
        random_backbone: keep a randomly initialised AlexNet (tests only; values are meaningless).
        device: torch device.
        size: evaluation resolution.
    """

    def __init__(
        self,
        alexnet_path: str | Path | None = None,
        *,
        random_backbone: bool = False,
        device: str = "cpu",
        size: int = EVAL_SIZE,
    ):
        try:
            import lpips
        except ImportError as err:
            raise EgoworldError("LPIPS needs the `lpips` package: pip install lpips") from err
        if alexnet_path is not None or not random_backbone:
            alexnet_path = find_alexnet(alexnet_path)
        # pnet_rand=True stops lpips from fetching AlexNet; its linear heads load from the package.
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
        if alexnet_path is not None:
            self._load_alexnet(_read_state_dict(alexnet_path), alexnet_path)
        else:
            logger.warning("LPIPS uses a random AlexNet: values are meaningless (tests only)")
        self.model = self.model.to(device).eval()
        self.device = device
        self.size = size

    def _load_alexnet(self, state: dict, path) -> None:
        # lpips splits alexnet.features into slices whose children keep their original indices.
        target = self.model.net.state_dict()
        mapped = {}
        for key in target:
            src = "features." + key.split(".", 1)[1]
            if src not in state:
                raise ValueError(
                    f"{path}: not a torchvision alexnet state dict (missing {src!r}); expected {ALEXNET_FILE}"
                )
            if getattr(state[src], "shape", None) != target[key].shape:
                raise ValueError(
                    f"{path}: {src} has shape {tuple(getattr(state[src], 'shape', ()))}, "
                    f"expected {tuple(target[key].shape)}"
                )
            mapped[key] = state[src]
        self.model.net.load_state_dict(mapped)

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        """Per-frame LPIPS distance `[T]` between uint8 videos `[T, H, W, 3]`."""
        import torch

        if np.shape(pred) != np.shape(gt):
            raise ValueError(
                f"pred and gt shapes differ: {np.shape(pred)} vs {np.shape(gt)} (expected equal)"
            )
        a = _to_tensor(pred, self.size).to(self.device)
        b = _to_tensor(gt, self.size).to(self.device)
        with torch.no_grad():
            d = self.model(a * 2 - 1, b * 2 - 1)  # lpips expects [-1, 1]
        return d.flatten().cpu().numpy().astype(np.float64)


# What `dreamsim(pretrained=True, dreamsim_type="ensemble", cache_dir=DIR)` checks for before it
# downloads (dreamsim/model.py `download_weights`): the three ViT-B/16 backbones and the LoRA
# weights, one "ensemble_lora" folder since dreamsim 0.2, one folder per backbone before.
DREAMSIM_BACKBONES = (
    "dino_vitb16_pretrain.pth",
    "open_clip_vitb16_pretrain.pth.tar",
    "clip_vitb16_pretrain.pth.tar",
)
DREAMSIM_LORA = (("ensemble_lora",), ("dino_vitb16_lora", "open_clip_vitb16_lora", "clip_vitb16_lora"))


def missing_dreamsim_files(cache_dir: str | Path) -> list[str]:
    """The DreamSim ensemble checkpoint files absent from `cache_dir` ([] when it is complete)."""
    cache_dir = Path(cache_dir)
    missing = [f for f in DREAMSIM_BACKBONES if not (cache_dir / f).exists()]
    if not any(all((cache_dir / f).exists() for f in lora) for lora in DREAMSIM_LORA):
        missing.append(" or ".join("+".join(lora) for lora in DREAMSIM_LORA))
    return missing


DREAMSIM_HOWTO = (
    "run `python -c \"from dreamsim import dreamsim; dreamsim(pretrained=True, cache_dir='DIR')\"` "
    "on a machine with network, copy DIR here and pass it with --dreamsim-cache DIR"
)


def check_dreamsim_cache(cache_dir: str | Path | None) -> Path:
    """The DreamSim weights folder, checked complete; FileNotFoundError naming what is missing.

    Does not import dreamsim or torch (dreamsim would start a download for anything missing).
    """
    files = ", ".join(DREAMSIM_BACKBONES) + " and ensemble_lora/"
    if cache_dir is None:
        raise FileNotFoundError(
            f"DreamSim weights not given: it needs a folder holding {files}; {DREAMSIM_HOWTO}"
        )
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        raise FileNotFoundError(
            f"DreamSim weights not found at {cache_dir} (no such folder; expected {files}); {DREAMSIM_HOWTO}"
        )
    missing = missing_dreamsim_files(cache_dir)
    if missing:
        raise FileNotFoundError(
            f"DreamSim weights not found at {cache_dir}: missing {', '.join(missing)}; {DREAMSIM_HOWTO}"
        )
    return cache_dir


class DreamSimMetric:
    """DreamSim (ensemble: DINO + CLIP + OpenCLIP ViT-B/16, LoRA-tuned), as NWM reports it.

    Args:
        cache_dir: folder that `dreamsim.dreamsim(pretrained=True, cache_dir=DIR)` filled on a
            machine with network: `dino_vitb16_pretrain.pth`, `open_clip_vitb16_pretrain.pth.tar`,
            `clip_vitb16_pretrain.pth.tar` and `ensemble_lora/` (dreamsim ≥ 0.2; the per-backbone
            `*_lora/` folders of 0.1.x also work). Anything missing is reported before `dreamsim`
            is imported, as `dreamsim` would otherwise download it.
        device: torch device.
        size: evaluation resolution.

    Needs `pip install dreamsim` (adds open_clip_torch, timm, peft, ftfy).
    """

    def __init__(self, cache_dir: str | Path | None, *, device: str = "cpu", size: int = EVAL_SIZE):
        cache_dir = check_dreamsim_cache(cache_dir)
        try:
            from dreamsim import dreamsim
        except ImportError as err:
            raise EgoworldError("DreamSim needs the `dreamsim` package: pip install dreamsim") from err
        self.model, _ = dreamsim(pretrained=True, cache_dir=str(cache_dir), device=device)
        self.model.eval()
        self.device = device
        self.size = size

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        """Per-frame DreamSim distance `[T]` between uint8 videos `[T, H, W, 3]`."""
        import torch

        if np.shape(pred) != np.shape(gt):
            raise ValueError(
                f"pred and gt shapes differ: {np.shape(pred)} vs {np.shape(gt)} (expected equal)"
            )
        a = _to_tensor(pred, self.size).to(self.device)
        b = _to_tensor(gt, self.size).to(self.device)
        with torch.no_grad():
            d = self.model(a, b)
        return d.flatten().cpu().numpy().astype(np.float64)
