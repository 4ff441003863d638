"""EDM preconditioning agrees with diffusers' EulerDiscreteScheduler configured as SVD's."""

from __future__ import annotations

import torch

from egoworld.objectives import EDM


def test_preconditioning_matches_the_svd_scheduler():
    edm = EDM()
    sched = edm.scheduler()
    sched.set_timesteps(12)
    sigmas = sched.sigmas[:-1]
    c_skip, c_out, c_in, c_noise = edm.precondition(sigmas)
    torch.testing.assert_close(
        c_noise, sched.timesteps.float(), rtol=1e-5, atol=1e-5
    )  # c_noise = ln(sigma)/4
    x = torch.randn(2, 3, 4)
    F_x = torch.randn(2, 3, 4)
    for i, t in enumerate(sched.timesteps):
        assert torch.allclose(sched.scale_model_input(x, t), c_in[i] * x)  # c_in
        # step() with v-prediction forms D = c_skip x + c_out F internally; recover it from prev_sample
        prev = sched.step(F_x, t, x).prev_sample
        sigma, sigma_next = sched.sigmas[i], sched.sigmas[i + 1]
        denoised = x - (x - prev) * sigma / (sigma - sigma_next)
        torch.testing.assert_close(denoised, c_skip[i] * x + c_out[i] * F_x, rtol=1e-4, atol=1e-4)


def test_denoiser_is_exact_when_F_is_the_v_target():
    """With F = (c_skip x - x0)/(-c_out) ... i.e. the v target, D(x) returns x0 exactly."""
    edm = EDM()
    x0, n = torch.randn(4, 8), torch.randn(4, 8)
    sigma = torch.tensor([0.1, 1.0, 5.0, 40.0]).view(-1, 1)
    x = x0 + sigma * n
    c_skip, c_out, c_in, _ = edm.precondition(sigma)
    v = (c_skip * x - x0) / (-c_out)
    torch.testing.assert_close(c_skip * x + c_out * v, x0)
    assert torch.allclose(edm.loss(x0, x0, sigma.flatten()), torch.zeros(4))


def test_sigma_is_log_normal_with_P_mean_and_P_std():
    edm = EDM(P_mean=0.7, P_std=1.6)
    ln = edm.sample_sigma(20000, generator=torch.Generator().manual_seed(0)).log()
    assert abs(ln.mean() - 0.7) < 0.05 and abs(ln.std() - 1.6) < 0.05
    assert torch.allclose(edm.weight(torch.tensor(1.0)), torch.tensor(2.0))
