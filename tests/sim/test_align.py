import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from egoworld.sim.align import apply_sim3, robust_umeyama, sim3_matrix, umeyama


def _known():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(200, 3))
    R = Rotation.from_euler("xyz", [30, -20, 75], degrees=True).as_matrix()
    return src, 2.5, R, np.array([0.3, -1.0, 2.0])


def test_umeyama_recovers_known_similarity():
    src, s, R, t = _known()
    dst = apply_sim3(src, s, R, t)
    s2, R2, t2 = umeyama(src, dst)
    assert s2 == pytest.approx(s, rel=1e-9)
    np.testing.assert_allclose(R2, R, atol=1e-9)
    np.testing.assert_allclose(t2, t, atol=1e-9)
    np.testing.assert_allclose(sim3_matrix(s2, R2, t2)[:3, :3], s * R, atol=1e-9)
    _, R3, _ = umeyama(src, apply_sim3(src, 1.0, R, t), with_scale=False)
    np.testing.assert_allclose(R3, R, atol=1e-9)


def test_robust_umeyama_ignores_outliers():
    src, s, R, t = _known()
    dst = apply_sim3(src, s, R, t)
    dst[:30] += np.random.default_rng(1).normal(scale=3.0, size=(30, 3))
    s2, R2, t2 = robust_umeyama(src, dst)
    assert s2 == pytest.approx(s, rel=1e-3)
    np.testing.assert_allclose(R2, R, atol=1e-3)
    s_plain, _, _ = umeyama(src, dst)
    assert abs(s_plain - s) > abs(s2 - s)


def test_umeyama_bad_input():
    with pytest.raises(ValueError, match=r"expected two \[N, 3\]"):
        umeyama(np.zeros((5, 3)), np.zeros((6, 3)))
    with pytest.raises(ValueError, match="all at one place"):
        umeyama(np.zeros((5, 3)), np.ones((5, 3)))
