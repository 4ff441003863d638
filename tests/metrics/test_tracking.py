"""Objects for SCS: annotation JSON, instance proposals, and SAM 2 end to end on CPU (random weights)."""

import json

import numpy as np
import pytest
import torch
from metrics_world import render

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
        ({"videos": {"a": {"objects": ["house"]}}}, r"videos\.a\.objects\[0\]: expected an object"),
        ({"videos": {"a": {"objects": [{"points": [["x", 2]]}]}}}, "points"),
        ({"videos": {"a": {"objects": [{"points": [[1, 2]], "frame": "0"}]}}}, "frame"),
    ],
)
def test_bad_annotations(tmp_path, data, match):
    with pytest.raises(ValueError, match=match) as err:
        load_annotations(_write(tmp_path, data))
    assert "ann.json" in str(err.value)  # names the file


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


def test_instance_proposals_keep_static_structures_only():
    inst = np.zeros((10, 10), int)  # 0: sky / background
    inst[6:] = 1  # floor: 40 %
    inst[:6, :2] = 2  # wall_0
    inst[2:5, 3:5] = 3  # chair_1 (static)
    inst[2:4, 6:8] = 4  # object_0 (movable)
    inst[4:6, 6:9] = 5  # hand (agent)
    inst[0, 9] = 6  # painting_0, below min_area
    objects = {
        1: {"name": "floor", "kind": "static"},
        2: {"name": "wall_0", "kind": "static"},
        3: {"name": "chair_1", "kind": "static"},
        4: {"name": "object_0", "kind": "movable"},
        5: {"name": "hand", "kind": "agent"},
        6: {"name": "painting_0", "kind": "static"},
    }
    picked = prompts_from_instances(inst, objects=objects, min_area=0.02)
    assert [(p.obj_id, p.instance_id) for p in picked] == [("chair_1", 3)]
    everything = prompts_from_instances(inst, objects=objects, min_area=0.0, exclude_names=())
    assert [p.obj_id for p in everything] == ["floor", "wall_0", "chair_1", "painting_0"]
    assert [p.instance_id for p in prompts_from_instances(inst, min_area=0.02, max_area=0.2)] == [
        2,
        3,
        4,
        5,
    ]  # no floor
    assert prompts_from_instances(inst, objects={}, allow_empty=True) == []
    with pytest.raises(ValueError, match="kinds kept"):
        prompts_from_instances(inst, objects={1: objects[1]})


def test_sam2_end_to_end_random_weights_and_checkpoint(tmp_path):
    """Plumbing: random SAM 2 (tiny config) tracks a mask and a click prompt through 2 frames."""
    torch.manual_seed(0)
    world = render(np.radians([0.0, 2.0]), width=64, height=48)
    tracker = Sam2Tracker(checkpoint=None, image_size=128)  # 1024 is ~50x slower on CPU
    ckpt = tmp_path / "sam2_random.pt"
    torch.save({"model": tracker.predictor.state_dict()}, ckpt)
    loaded = Sam2Tracker(checkpoint=ckpt, image_size=128)
    name, weight = next(iter(loaded.predictor.state_dict().items()))
    assert torch.equal(weight, tracker.predictor.state_dict()[name])
    prompts = prompts_from_instances(world.instances)[:1]
    clicks = {"videos": {"v": {"objects": [{"id": "click", "points": [[40, 20]], "labels": [1]}]}}}
    prompts += load_annotations(_write(tmp_path, clicks))["v"]  # a mask prompt and a click prompt
    masks = loaded.track(world.frames, prompts)
    assert masks.shape == (2, 2, 48, 64) and masks.dtype == bool
    # SAM 2 passes a mask input through as the output of its conditioning frame
    # (use_mask_input_as_output_without_sam in the sam2.1 configs), whatever the weights
    np.testing.assert_array_equal(masks[0, 0], prompts[0].mask)
    with pytest.raises(FileNotFoundError, match="SAM 2 checkpoint not found: .*nope.pt.*download"):
        Sam2Tracker(checkpoint=tmp_path / "nope.pt")
    outside = prompts[1].__class__("off-frame", 0, np.array([[99.0, 5.0]]), np.array([1]))
    with pytest.raises(ValueError, match="outside"):
        loaded.track(world.frames, [outside])


def test_sam2_bad_config_and_mismatched_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="unknown SAM 2 config 'configs/sam2.1/nope.yaml'"):
        Sam2Tracker("configs/sam2.1/nope.yaml", image_size=128)
    ckpt = tmp_path / "other.pt"
    torch.save({"model": {"some.other.weight": torch.zeros(3)}}, ckpt)
    with pytest.raises(ValueError, match=r"other\.pt does not match config 'configs/sam2\.1/sam2\.1_hiera_t"):
        Sam2Tracker(checkpoint=ckpt, image_size=128)
