import numpy as np
import pytest
from scipy import optimize, stats

import bayesglmm as bg
from bayesglmm.frequentist.laplace import laplace_deviance

from .reference import GLMER_PROFILE, LMER_PROFILE_SLEEPSTUDY


def _model(name):
    meta = bg.datasets.info(name)
    return bg.GLMM(meta.formula, bg.datasets.load(name), family=meta.family)


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_lmm_profile_equals_lme4_confint(method):
    """Profile intervals of sleepstudy's SDs (correlated slopes) and σ ≤ 1e-4 relative from lme4's."""
    vc = _model("sleepstudy").fit(method).variance_components(profile=True)
    vc = vc[vc["kind"] == "sd"].set_index(["group", "term"])
    for key, (low, high) in LMER_PROFILE_SLEEPSTUDY.items():
        assert vc.loc[key, "conf_low"] == pytest.approx(low, rel=1e-4), key
        assert vc.loc[key, "conf_high"] == pytest.approx(high, rel=1e-4), key
    assert vc["conf_low"].lt(vc["estimate"]).all() and vc["conf_high"].gt(vc["estimate"]).all()


def test_laplace_profile_ends_are_on_the_cutoff():
    """At each end the profile deviance is χ²₁(0.95) above the minimum (cbpp, one SD)."""
    model = _model("cbpp")
    fit = model.fit("laplace")
    low, high = fit.profile()[("herd", "(Intercept)")]
    assert 0 < low < fit.theta[0] < high
    dev, _ = laplace_deviance(model.design, model.family)
    d_min = dev(np.concatenate([fit.theta, fit.beta]))
    for s in (low, high):
        res = optimize.minimize(lambda b: dev(np.concatenate([[s], b])), fit.beta, method="BFGS")
        assert res.fun - d_min == pytest.approx(stats.chi2.ppf(0.95, 1), abs=2e-3)
    vc = fit.variance_components(profile=True)
    assert (vc.loc[0, "conf_low"], vc.loc[0, "conf_high"]) == (low, high)


def test_pql_has_no_profile():
    with pytest.raises(ValueError, match="no likelihood"):
        _model("cbpp").fit("pql").variance_components(profile=True)


@pytest.mark.parametrize("name,method", list(GLMER_PROFILE))
def test_glmm_profile_equals_glmer_confint(name, method):
    """Laplace and AGQ(25) profile intervals ≤ 1e-3 relative from glmer's (which spline-interpolates)."""
    fit = _model(name).fit(method)
    for key, (low, high) in GLMER_PROFILE[(name, method)].items():
        got = fit.profile()[key]
        assert got[0] == pytest.approx(low, rel=1e-3), key
        assert got[1] == pytest.approx(high, rel=1e-3), key
