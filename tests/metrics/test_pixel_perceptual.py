"""PSNR/SSIM/LPIPS at 224×224, and Figure 3's point: SCS ignores appearance, pixel metrics do not."""

import numpy as np
import pytest
from metrics_world import render

from egoworld.errors import EgoworldError
from egoworld.metrics import structural_consistency_score
from egoworld.metrics.perceptual import DreamSimMetric, LPIPSMetric
from egoworld.metrics.pixel import psnr, resize_video, ssim
from egoworld.metrics.tracking import masks_from_instances, prompts_from_instances

YAWS = np.radians(np.arange(6) * 3.0)


def test_resize_protocol():
    x = np.zeros((2, 48, 64, 3), np.uint8)
    assert resize_video(x).shape == (2, 224, 224, 3)
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        resize_video(np.zeros((2, 48, 64), np.uint8))


def test_psnr_ssim_known_values():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)
    assert np.isinf(psnr(a, a)).all()
    assert ssim(a, a) == pytest.approx([1.0, 1.0])
    b = np.clip(a.astype(int) + 8, 0, 255).astype(np.uint8)
    mse = ((a / 255.0 - b / 255.0) ** 2).mean(axis=(1, 2, 3))
    assert psnr(a, b) == pytest.approx(10 * np.log10(1 / mse))
    assert (ssim(a, 255 - a) < 0.5).all()
    with pytest.raises(ValueError, match="differ"):
        psnr(a, a[:1])


def test_scs_ignores_appearance_while_pixel_and_perceptual_metrics_change():
    gt = render(YAWS, texture_seed=0)
    retextured = render(YAWS, texture_seed=7)  # same geometry and camera path, new texture
    recoloured = gt.frames[..., ::-1].copy()  # same texture, colours permuted
    prompts = prompts_from_instances(gt.instances)
    gt_masks = masks_from_instances(gt.instances, prompts)
    lpips = LPIPSMetric(random_backbone=True)
    base_lpips = lpips(gt.frames, gt.frames)
    assert np.allclose(base_lpips, 0.0, atol=1e-6)
    for frames, instances in ((retextured.frames, retextured.instances), (recoloured, gt.instances)):
        pred_masks = masks_from_instances(instances, prompts)
        assert structural_consistency_score(pred_masks, gt_masks) == 100.0
        assert (psnr(frames, gt.frames) < 30).all()
        assert (ssim(frames, gt.frames) < 0.9).all()
        assert (lpips(frames, gt.frames) > base_lpips + 1e-4).all()


def test_lpips_loads_local_alexnet_and_reports_missing_weights(tmp_path, monkeypatch):
    import torch
    import torchvision

    path = tmp_path / "alexnet.pth"
    state = torchvision.models.alexnet(weights=None).state_dict()
    torch.save(state, path)
    metric = LPIPSMetric(path)
    assert torch.equal(metric.model.net.slice1[0].weight, state["features.0.weight"])
    with pytest.raises(FileNotFoundError, match="AlexNet weights not found at .*missing.pth.*IMAGENET1K_V1"):
        LPIPSMetric(tmp_path / "missing.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # not this machine's hub cache
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="needs AlexNet weights"):
        LPIPSMetric(None)
    torch.save({"nope": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a torchvision alexnet"):
        LPIPSMetric(tmp_path / "bad.pth")


def test_dreamsim_reports_missing_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="DreamSim weights not found at .*dreamsim_cache"):
        DreamSimMetric(tmp_path / "dreamsim_cache")
    with pytest.raises(FileNotFoundError, match="not given"):
        DreamSimMetric(None)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "pretrained.zip").write_bytes(b"partial download")  # non-empty, but not the weights
    (cache / "dino_vitb16_pretrain.pth").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="missing open_clip_vitb16_pretrain.pth.tar, .*ensemble_lora"):
        DreamSimMetric(cache)
    for name in ("open_clip_vitb16_pretrain.pth.tar", "clip_vitb16_pretrain.pth.tar"):
        (cache / name).write_bytes(b"")
    (cache / "ensemble_lora").mkdir()
    try:  # complete: the next step is the dreamsim package itself
        import dreamsim  # noqa: F401
    except ImportError:
        with pytest.raises(EgoworldError, match="pip install dreamsim"):
            DreamSimMetric(cache)
