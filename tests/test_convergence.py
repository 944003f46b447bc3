"""The vectorized rank-normalised R-hat and bulk ESS (bayesglmm.bayes.convergence) against ArviZ's
own functions, element by element: independent and autocorrelated chains, ties, NaN, a constant
parameter, one chain, short chains."""

import warnings

import arviz as az
import numpy as np
import pytest

from bayesglmm.bayes.convergence import bulk_ess, rank_rhat, rhat_and_ess


def _cases():
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(size=(2, 400, 30)), axis=1) * 0.05 + rng.normal(size=(2, 400, 30))
    ar = np.zeros((3, 301, 4))
    e = rng.normal(size=ar.shape)
    for t in range(1, ar.shape[1]):
        ar[:, t] = 0.95 * ar[:, t - 1] + e[:, t]
    mixed = rng.normal(size=(3, 50, 5))
    mixed[:, :, 1] = 2.0                               # a constant
    mixed[0, 3, 2] = np.nan                            # a NaN
    mixed[:, :, 3] = np.round(mixed[:, :, 3])          # many ties
    mixed[1, :, 4] += 3.0                              # a chain off the others
    return {"walk": walk, "ar(0.95), odd draws": ar, "mixed": mixed, "shape (4, 101, 3, 2)": rng.normal(size=(4, 101, 3, 2)),
            "one chain": rng.normal(size=(1, 200, 3)), "5 draws": rng.normal(size=(2, 5, 2)),
            "3 draws": rng.normal(size=(2, 3, 2))}


@pytest.mark.parametrize("name", list(_cases()))
def test_equal_to_arviz(name):
    draws = _cases()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r_az, e_az = np.asarray(az.rhat(draws), float), np.asarray(az.ess(draws, method="bulk"), float)
    r, e = rhat_and_ess(draws)
    assert r.shape == e.shape == draws.shape[2:]
    np.testing.assert_array_equal(np.isnan(r), np.isnan(r_az))
    np.testing.assert_array_equal(np.isnan(e), np.isnan(e_az))
    np.testing.assert_allclose(r, r_az, rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(e, e_az, rtol=1e-10, equal_nan=True)
    np.testing.assert_array_equal(rank_rhat(draws), r)
    np.testing.assert_array_equal(bulk_ess(draws), e)
