"""Rectified-flow relations agree with diffusers' flow scheduler."""

from __future__ import annotations

import torch

from egoworld.objectives import RectifiedFlow


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
