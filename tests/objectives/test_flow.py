"""Rectified-flow relations agree with diffusers' flow scheduler; Cosmos Predict2's noise and weighting."""

from __future__ import annotations

import json
import math

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from egoworld.families.flow import COSMOS2_SCHEDULER_CONFIG
from egoworld.objectives import RectifiedFlow
from egoworld.objectives.flow import scheduler_from_config


def test_x0_and_velocity_relations():
    flow = RectifiedFlow()
    x0, eps = torch.randn(3, 5), torch.randn(3, 5)
    t = torch.tensor([0.1, 0.5, 0.9]).view(-1, 1)
    x_t = flow.interpolate(x0, eps, t)
    v = flow.target(x0, eps)
    torch.testing.assert_close(flow.x0_from_velocity(x_t, v, t), x0)
    torch.testing.assert_close(x_t + (1 - t) * v, eps)  # following v to t=1 lands on the noise


def test_scheduler_step_with_exact_velocity_lands_on_the_interpolant():
    flow = RectifiedFlow(shift=3.0)
    sched = flow.scheduler()
    sched.set_timesteps(6)
    x0, eps = torch.randn(2, 4), torch.randn(2, 4)
    x = flow.interpolate(x0, eps, sched.sigmas[0])
    for i, t in enumerate(sched.timesteps):
        x = sched.step(flow.target(x0, eps), t, x).prev_sample
        torch.testing.assert_close(x, flow.interpolate(x0, eps, sched.sigmas[i + 1]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x, x0, rtol=1e-5, atol=1e-5)


def test_t_sampling_is_shifted_logit_normal_in_unit_interval():
    flow = RectifiedFlow(shift=3.0)
    t = flow.sample_t(10000, generator=torch.Generator().manual_seed(0))
    assert t.min() > 0 and t.max() < 1
    assert t.median() > 0.6  # shift 3 moves the median of sigmoid(N(0,1)) from 0.5 to 0.75
    mask = torch.tensor([0.0, 1.0]).view(1, 2)
    loss = flow.loss(torch.ones(1, 2), torch.zeros(1, 2), mask)
    assert loss.item() == 1.0


def test_cosmos_predict2_noise_is_lognormal_sigma_scaled_for_video():
    flow = RectifiedFlow(noise="cosmos-predict2")
    t = flow.sample_t(20000, generator=torch.Generator().manual_seed(0), video_frames=4)
    assert t.min() > 0 and t.max() < 1
    log_sigma = (t / (1 - t)).log()  # t = sigma / (1 + sigma)
    assert abs(log_sigma.mean().item() - 0.5 * math.log(4)) < 0.03  # ln(sigma) ~ N(0, 1) + ln sqrt(T)
    assert abs(log_sigma.std().item() - 1.0) < 0.03


def test_cosmos_predict2_weight_is_the_edm_loss_of_the_pipelines_preconditioning():
    """w(t) ||F - v||^2 equals Cosmos Predict2's lambda(sigma) ||x0_pred - x0||^2 with the pipeline's
    c_in = c_skip = 1 - t, c_out = -t (sigma_data = 1)."""
    flow = RectifiedFlow(noise="cosmos-predict2")
    g = torch.Generator().manual_seed(0)
    x0, eps, out = (torch.randn(3, 2, 5, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    sigma = torch.tensor([0.05, 1.3, 40.0], dtype=torch.float64)
    t = sigma / (1 + sigma)
    s5, t5 = sigma.view(-1, 1, 1, 1, 1), t.view(-1, 1, 1, 1, 1)
    x_sigma = x0 + s5 * eps
    x0_pred = (1 - t5) * x_sigma + (-t5) * out  # c_skip * x + c_out * F, F the network output
    edm = (s5.square() + 1) / s5.square() * (x0_pred - x0).square()
    torch.testing.assert_close(flow.interpolate(x0, eps, t5), (1 - t5) * x_sigma)  # c_in * x = x_t
    torch.testing.assert_close(flow.loss(out, flow.target(x0, eps), t=t), edm.flatten(1).mean(1).float())


def test_logit_normal_is_unweighted_and_unknown_noise_is_refused():
    flow = RectifiedFlow()
    v_pred, v = torch.randn(2, 6), torch.randn(2, 6)
    torch.testing.assert_close(flow.loss(v_pred, v, t=torch.tensor([0.2, 0.9])), flow.loss(v_pred, v))
    with pytest.raises(ValueError, match="flow noise 'edm' is not known"):
        RectifiedFlow(noise="edm")


def test_scheduler_from_config_reproduces_the_cosmos2_pipeline_schedule():
    saved = json.loads(FlowMatchEulerDiscreteScheduler(use_karras_sigmas=True).to_json_string())
    sched = scheduler_from_config({**saved, "sigma_max": 80.0}, **COSMOS2_SCHEDULER_CONFIG)  # extra keys: ok
    sched.set_timesteps(sigmas=torch.linspace(0, 1, 5, dtype=torch.float64))
    assert sched.sigmas[0].item() == pytest.approx(80.0) and sched.sigmas[-2].item() == pytest.approx(0.002)
    assert torch.all(sched.sigmas[:-2] > sched.sigmas[1:-1])  # Karras, decreasing, then the appended 0
    with pytest.raises(ValueError, match="scheduler class 'NotAScheduler' is not a diffusers scheduler"):
        scheduler_from_config({"_class_name": "NotAScheduler"})


def test_an_x0_network_gives_the_velocity_and_the_velocity_loss():
    """prediction="x0": the true x0 gives the true velocity eps - x0 and zero loss; the loss of an x0
    error e is |e|^2 / max(t, X0_LOSS_MIN_T)^2, the velocity error it causes."""
    from egoworld.objectives.flow import X0_LOSS_MIN_T

    obj = RectifiedFlow(prediction="x0")
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, 5, generator=g), torch.randn(3, 4, 5, generator=g)
    t = torch.tensor([0.01, 0.3, 0.9])
    x_t = obj.interpolate(x0, eps, t.view(-1, 1, 1))
    v = obj.velocity_from_output(x_t, x0, t.view(-1, 1, 1))
    torch.testing.assert_close(v, eps - x0, rtol=1e-4, atol=1e-4)
    assert torch.all(obj.output_loss(x0, x0, eps, t) == 0)
    loss = obj.output_loss(x0 + 0.1, x0, eps, t)
    torch.testing.assert_close(loss, 0.01 / t.clamp_min(X0_LOSS_MIN_T).square())
    plain = RectifiedFlow()
    out = torch.randn(3, 4, 5, generator=g)
    assert plain.velocity_from_output(x_t, out, t.view(-1, 1, 1)) is out
    torch.testing.assert_close(plain.output_loss(out, x0, eps, t), plain.loss(out, eps - x0, t=t))
    with pytest.raises(ValueError, match="flow prediction 'eps' is not known"):
        RectifiedFlow(prediction="eps")
