"""Perceptual metrics at 224×224 (NWM / EgoWM protocol): LPIPS (AlexNet) and DreamSim (ensemble).

Nothing is downloaded. LPIPS's small linear heads ship inside the `lpips` package; its AlexNet
backbone is a torchvision `alexnet` state dict read from a local file. DreamSim loads from a
local cache folder filled beforehand by the `dreamsim` package. Inputs are uint8 `[T, H, W, 3]`
videos; outputs are per-frame distances `[T]` (lower is more similar).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from egoworld.errors import EgoworldError
from egoworld.metrics.pixel import EVAL_SIZE, resize_video

logger = logging.getLogger(__name__)

ALEXNET_HOWTO = (
    "save torchvision's ImageNet AlexNet on a machine with network: "
    "`torch.save(torchvision.models.alexnet(weights='IMAGENET1K_V1').state_dict(), 'alexnet.pth')` "
    "(or copy ~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth), then pass it with --alexnet"
)


def _to_tensor(frames: np.ndarray, size: int):
    import torch

    x = torch.from_numpy(resize_video(frames, size)).permute(0, 3, 1, 2)  # [T, 3, S, S] in [0, 1]
    return x


class LPIPSMetric:
    """LPIPS v0.1 with the AlexNet backbone (as NWM), on frames resized to 224×224.

    Args:
        alexnet_path: torchvision `alexnet` state dict (`features.*` keys). Required unless
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
        import torch

        try:
            import lpips
        except ImportError as err:
            raise EgoworldError("LPIPS needs the `lpips` package: pip install lpips") from err
        if alexnet_path is None and not random_backbone:
            raise FileNotFoundError(f"LPIPS needs AlexNet weights (none given); {ALEXNET_HOWTO}")
        if alexnet_path is not None and not Path(alexnet_path).is_file():
            raise FileNotFoundError(f"AlexNet weights not found at {alexnet_path}; {ALEXNET_HOWTO}")
        # pnet_rand=True stops lpips from fetching AlexNet; its linear heads load from the package.
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
        if alexnet_path is not None:
            self._load_alexnet(torch.load(alexnet_path, map_location="cpu", weights_only=True), alexnet_path)
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
                raise ValueError(f"{path}: not a torchvision alexnet state dict (missing {src!r})")
            if state[src].shape != target[key].shape:
                raise ValueError(
                    f"{path}: {src} has shape {tuple(state[src].shape)}, expected {tuple(target[key].shape)}"
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
        howto = (
            "run `python -c \"from dreamsim import dreamsim; dreamsim(pretrained=True, cache_dir='DIR')\"` "
            "on a machine with network, copy DIR here and pass it with --dreamsim-cache"
        )
        if cache_dir is None:
            raise FileNotFoundError(f"DreamSim weights not given; {howto}")
        cache_dir = Path(cache_dir)
        if not cache_dir.is_dir():
            raise FileNotFoundError(f"DreamSim weights not found at {cache_dir} (no such folder); {howto}")
        missing = missing_dreamsim_files(cache_dir)
        if missing:
            # dreamsim() would start a download for these: refuse instead (nothing is downloaded)
            raise FileNotFoundError(
                f"DreamSim weights not found at {cache_dir}: missing {', '.join(missing)}; {howto}"
            )
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
