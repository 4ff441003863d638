"""Objects for SCS: annotation JSON, instance proposals, and SAM 2 end to end on CPU (random weights)."""

import json

import numpy as np
import pytest
import torch
from metrics_world import render

from egoworld.metrics import structural_consistency_score
from egoworld.metrics.tracking import (
    Sam2Tracker,
    fit_prompts,
    load_annotations,
    masks_from_instances,
    prompts_from_instances,
)


def _write(tmp_path, data):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def test_load_annotations_and_rescale(tmp_path):
    path = _write(
        tmp_path,
        {
            "videos": {
                "clip": {"size": [200, 100], "objects": [{"id": "tree", "points": [[10, 20], [30, 40]]}]}
            }
        },
    )
    ann = load_annotations(path)
    (obj,) = ann["clip"]
    assert obj.obj_id == "tree" and obj.frame == 0 and obj.labels.tolist() == [1, 1]
    (fit,) = fit_prompts(ann["clip"], 100, 50)
    assert fit.points.tolist() == [[5, 10], [15, 20]]


@pytest.mark.parametrize(
    "data, match",
    [
        ({"clips": {}}, '"videos"'),
        ({"videos": {"a": {"objects": []}}}, "non-empty"),
        ({"videos": {"a": {"objects": [{"points": [1, 2]}]}}}, "points"),
        ({"videos": {"a": {"objects": [{"points": [[1, 2]], "labels": [2]}]}}}, "labels"),
    ],
)
def test_bad_annotations(tmp_path, data, match):
    with pytest.raises(ValueError, match=match):
        load_annotations(_write(tmp_path, data))


def test_missing_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        load_annotations(tmp_path / "nope.json")


def test_instance_proposals():
    world = render(np.zeros(2))
    prompts = prompts_from_instances(world.instances)
    assert [p.instance_id for p in prompts] == [1, 2]  # structure 3 is out of view in frame 0
    masks = masks_from_instances(world.instances, prompts)
    assert masks.shape == (2, 2, 72, 96) and masks.dtype == bool
    with pytest.raises(ValueError, match="no object"):
        prompts_from_instances(np.zeros((4, 4), int))


def test_sam2_end_to_end_random_weights_and_checkpoint(tmp_path):
    """Plumbing: random SAM 2 (tiny config) tracks a click and a mask through 3 frames of both videos."""
    torch.manual_seed(0)
    world = render(np.radians([0.0, 2.0, 4.0]), width=64, height=48)
    tracker = Sam2Tracker(checkpoint=None, image_size=256)  # 1024 is ~5x slower on CPU
    ckpt = tmp_path / "sam2_random.pt"
    torch.save({"model": tracker.predictor.state_dict()}, ckpt)
    loaded = Sam2Tracker(checkpoint=ckpt, image_size=256)
    name, weight = next(iter(loaded.predictor.state_dict().items()))
    assert torch.equal(weight, tracker.predictor.state_dict()[name])
    prompts = prompts_from_instances(world.instances)[:1]
    clicks = {"videos": {"v": {"objects": [{"id": "click", "points": [[40, 20]], "labels": [1]}]}}}
    prompts += load_annotations(_write(tmp_path, clicks))["v"]  # a click prompt and a mask prompt
    gt_masks = loaded.track(world.frames, prompts)
    pred_masks = loaded.track(world.frames[..., ::-1].copy(), prompts)
    assert gt_masks.shape == (3, 2, 48, 64) and gt_masks.dtype == bool
    if gt_masks.any() or pred_masks.any():
        assert 0.0 <= structural_consistency_score(pred_masks, gt_masks) <= 100.0
    with pytest.raises(FileNotFoundError, match="SAM 2 checkpoint not found: .*nope.pt.*download"):
        Sam2Tracker(checkpoint=tmp_path / "nope.pt")
    outside = prompts[1].__class__("off-frame", 0, np.array([[99.0, 5.0]]), np.array([1]))
    with pytest.raises(ValueError, match="outside"):
        loaded.track(world.frames, [outside])
