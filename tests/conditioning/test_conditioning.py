"""EgoWM core: per-frame action conditioning of the three diffusers backbone families."""

from __future__ import annotations

import pytest
import torch

from egoworld import ActionConditionedModel, condition_on_actions
from tests.conditioning.cases import CASES, output, per_frame_timestep

NAMES = list(CASES)


def _batch(case) -> int:
    return next(iter(case.inputs.values())).shape[0]


def _wake(model: ActionConditionedModel, seed: int = 1) -> None:
    """Give the zero-initialised output layers random weights, as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (model.action_encoder.proj_out, model.action_encoder.state_proj_out):
            if layer is not None:
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 0.5)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.5)


def _capture_site(case, model: ActionConditionedModel) -> tuple[list, object]:
    """Capture the timestep embedding as the first modulation site receives it, per latent frame."""
    store: list[torch.Tensor] = []
    base = model.base
    if case.name == "svd":
        frames = case.num_video_frames

        def hook(module, args, kwargs):
            store.append(kwargs["temb"].reshape(-1, frames, kwargs["temb"].shape[-1]))  # [B, F, D]

        return store, base.down_blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    latent_frames = case.inputs["hidden_states"].shape[2]
    block = base.transformer_blocks[0] if case.name == "cosmos" else base.blocks[0]

    def hook(module, args):  # args[2]: embedded_timestep [B, S, D] / timestep_proj [B, S, 6, D]
        site = args[2]
        store.append(site.reshape(site.shape[0], latent_frames, -1))  # [B, T, HW*D]

    return store, block.register_forward_pre_hook(hook)


@pytest.mark.parametrize("name", NAMES)
def test_fresh_wrapper_equals_base_bit_for_bit(name):
    case = CASES[name]()
    with torch.no_grad():
        base_same_layout = output(case.model(**per_frame_timestep(case)))
        base_batch_t = output(case.model(**case.inputs))
        model = condition_on_actions(case.model, 3)
        actions = torch.randn(_batch(case), case.num_video_frames, 3)
        wrapped = output(model(**case.inputs, actions=actions))
    assert torch.equal(wrapped, base_same_layout)
    torch.testing.assert_close(wrapped, base_batch_t, atol=1e-5, rtol=0)
    # the hooks are inert outside the wrapper's forward
    with torch.no_grad():
        assert torch.equal(output(case.model(**per_frame_timestep(case))), base_same_layout)


@pytest.mark.parametrize("name", NAMES)
def test_different_actions_give_different_outputs(name):
    case = CASES[name]()
    model = condition_on_actions(case.model, 3, encoder="mlp" if name == "cosmos" else "sincos")
    _wake(model)
    a = torch.randn(_batch(case), case.num_video_frames, 3)
    with torch.no_grad():
        out_a = output(model(**case.inputs, actions=a))
        out_b = output(model(**case.inputs, actions=a + 0.5))
        out_a2 = output(model(**case.inputs, actions=a))
    assert torch.equal(out_a, out_a2)
    assert (out_a - out_b).abs().max() > 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_changing_frame_k_changes_only_its_latent_frame_at_the_sites(name):
    case = CASES[name]()
    model = condition_on_actions(case.model, 3)
    _wake(model)
    store, handle = _capture_site(case, model)
    a = torch.randn(_batch(case), case.num_video_frames, 3)
    k = case.num_video_frames - 2  # a frame inside the last latent window for Wan/Cosmos
    b = a.clone()
    b[:, k] += 1.0
    with torch.no_grad():
        model(**case.inputs, actions=a)
        model(**case.inputs, actions=b)
    handle.remove()
    diff = (store[0] - store[1]).abs().amax(dim=(0, 2))  # per latent frame
    c = model.temporal_compression
    changed_frame = k if c == 1 else (k + c - 1) // c
    assert diff[changed_frame] > 1e-4
    others = [i for i in range(diff.shape[0]) if i != changed_frame]
    assert torch.all(diff[others] == 0), diff


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_gradients_reach_the_action_encoder(name, checkpointing):
    case = CASES[name]()
    model = condition_on_actions(case.model, 3).train()
    if checkpointing:
        model.enable_gradient_checkpointing()
    a = torch.randn(_batch(case), case.num_video_frames, 3)
    output(model(**case.inputs, actions=a)).square().mean().backward()
    # fresh: only the zero-initialised last layer can move first
    assert model.action_encoder.proj_out.weight.grad.abs().sum() > 0
    model.zero_grad()
    _wake(model)
    output(model(**case.inputs, actions=a)).square().mean().backward()
    for pname, p in model.action_encoder.named_parameters():
        if "state" not in pname:
            assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_save_load_reproduces_outputs_exactly(name, tmp_path):
    case = CASES[name]()
    model = condition_on_actions(case.model, 3, state_dim=5)
    _wake(model)
    a = torch.randn(_batch(case), case.num_video_frames, 3)
    s = torch.randn(_batch(case), 5)
    with torch.no_grad():
        expected = output(model(**case.inputs, actions=a, state=s))
    model.save_pretrained(tmp_path / "wm")
    assert sorted(p.name for p in (tmp_path / "wm").iterdir()) == [
        "action_encoder",
        "base",
        "egoworld_conditioning.json",
    ]
    assert not list((tmp_path / "wm").rglob("*.bin")), "weights must be safetensors"
    loaded = ActionConditionedModel.from_pretrained(tmp_path / "wm").eval()
    with torch.no_grad():
        assert torch.equal(output(loaded(**case.inputs, actions=a, state=s)), expected)


def test_action_parameters_are_only_the_new_ones():
    case = CASES["svd"]()
    model = condition_on_actions(case.model, 25, state_dim=25)
    new = {id(p) for p in model.action_parameters()}
    base = {id(p) for p in model.base_parameters()}
    assert new == {id(p) for p in model.action_encoder.parameters()}
    assert not new & base
    assert len(new) + len(base) == len(list(model.parameters()))


def test_initial_state_changes_every_frame():
    case = CASES["wan"]()
    model = condition_on_actions(case.model, 25, state_dim=25, encoder="mlp")
    _wake(model)
    a = torch.zeros(_batch(case), case.num_video_frames, 25)
    s = torch.randn(_batch(case), 25)
    with torch.no_grad():
        e1 = model.action_encoder(a, s)
        e2 = model.action_encoder(a, s + 1)
    assert torch.all((e1 - e2).abs().amax(dim=(0, 2)) > 0)


# bad input --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wan_model():
    case = CASES["wan"]()
    return case, condition_on_actions(case.model, 3, state_dim=4)


def test_wrong_action_width(wan_model):
    case, model = wan_model
    with pytest.raises(ValueError, match=r"width 5; expected action_dim=3"):
        model(**case.inputs, actions=torch.zeros(2, case.num_video_frames, 5))


@pytest.mark.parametrize("name,frames,expected", [("wan", 8, "F=9"), ("cosmos", 7, "F=9"), ("svd", 5, "F=4")])
def test_wrong_frame_count(name, frames, expected):
    case = CASES[name]()
    model = condition_on_actions(case.model, 3)
    with pytest.raises(ValueError, match=expected):
        model(**case.inputs, actions=torch.zeros(2, frames, 3))


def test_nan_and_inf_actions(wan_model):
    case, model = wan_model
    a = torch.zeros(2, case.num_video_frames, 3)
    a[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or Inf \(first at \[b, f, d\] = \[1, 2, 0\]\)"):
        model(**case.inputs, actions=a)
    a[1, 2, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        model(**case.inputs, actions=a)


def test_state_of_wrong_width(wan_model):
    case, model = wan_model
    with pytest.raises(ValueError, match=r"state has shape \(2, 3\); expected \[B, state_dim\] = \(2, 4\)"):
        model(**case.inputs, actions=torch.zeros(2, case.num_video_frames, 3), state=torch.zeros(2, 3))


def test_state_without_state_dim():
    case = CASES["svd"]()
    model = condition_on_actions(case.model, 3)
    with pytest.raises(ValueError, match="state_dim=None"):
        model(**case.inputs, actions=torch.zeros(2, 4, 3), state=torch.zeros(2, 3))


def test_unknown_model_class_lists_supported():
    with pytest.raises(
        ValueError, match="UNetSpatioTemporalConditionModel, CosmosTransformer3DModel, WanTransformer3DModel"
    ):
        condition_on_actions(torch.nn.Linear(2, 2), 3)


def test_unknown_encoder():
    with pytest.raises(ValueError, match="encoder='conv' is not known"):
        condition_on_actions(CASES["wan"]().model, 3, encoder="conv")


def test_timestep_layouts_that_cannot_carry_per_frame_embeddings():
    case = CASES["cosmos"]()
    model = condition_on_actions(case.model, 3)
    bad = dict(case.inputs, timestep=torch.zeros(2, 1, 4, 1, 1))  # T=3 latent frames
    with pytest.raises(ValueError, match=r"cannot carry per-frame embeddings; expected \[B, 1, T, 1, 1\]"):
        model(**bad, actions=torch.zeros(2, case.num_video_frames, 3))
    case = CASES["wan"]()
    model = condition_on_actions(case.model, 3)
    bad = dict(case.inputs, timestep=torch.zeros(2, 7))
    with pytest.raises(ValueError, match=r"expected per-token \[B, S\] = \(2, 48\)"):
        model(**bad, actions=torch.zeros(2, case.num_video_frames, 3))


def test_load_from_a_folder_that_is_not_a_saved_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="egoworld_conditioning.json not found"):
        ActionConditionedModel.from_pretrained(tmp_path)
