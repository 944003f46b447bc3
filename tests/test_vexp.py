"""The vectorized exponential of the Numba kernels against NumPy's."""

import numpy as np

from bayesglmm.bayes.vexp import EXP_HI, EXP_LO, exp_into


def _exp(x):
    out = np.empty_like(x)
    exp_into(x, out, np.empty(x.size, dtype=np.int64), x.size)
    return out


def test_within_two_ulp_of_numpy_over_the_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(EXP_LO, EXP_HI, 200_000), rng.normal(0, 3, 100_000),
                        np.linspace(-1, 1, 20_001), [0.0, -0.0, 1e-300, -1e-300, EXP_LO, EXP_HI]])
    ref = np.exp(x)
    ulp = np.abs(_exp(x) - ref) / np.spacing(ref)
    assert ulp.max() <= 2.0
    assert _exp(np.array([0.0]))[0] == 1.0  # the middle Gauss-Hermite node's e^0 is 1 exactly
    assert np.all(_exp(np.arange(-20.0, 21.0) * np.log(2.0)) > 0)


def test_clamps_outside_the_range_and_keeps_nan():
    x = np.array([-800.0, -np.inf, 710.0, np.inf, np.nan])
    out = _exp(x)
    np.testing.assert_allclose(out[:2], np.exp(EXP_LO), rtol=1e-15)
    np.testing.assert_allclose(out[2:4], np.exp(EXP_HI), rtol=1e-15)
    assert np.isnan(out[4])


def test_first_m_elements_only_and_in_place():
    x = np.linspace(-3, 3, 11)
    out = np.full(11, -1.0)
    exp_into(x, out, np.empty(11, dtype=np.int64), 5)
    np.testing.assert_allclose(out[:5], np.exp(x[:5]), rtol=1e-15)
    assert np.all(out[5:] == -1.0)
    y = x.copy()
    exp_into(y, y, np.empty(11, dtype=np.int64), 11)  # overlapping: the scalar loop, same values
    np.testing.assert_allclose(y, np.exp(x), rtol=1e-15)
