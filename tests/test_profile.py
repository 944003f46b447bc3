import json
import warnings
from importlib import resources

import numpy as np
import pandas as pd
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


# lme4's profile intervals of correlations (reference/profile_correlations.json, each with its R call):
# sleepstudy's REML fit (profiled on the ML deviance, so the ML fit's interval is the same) to 1e-4, and a
# Poisson GLMM with a correlated random slope (epil, visit centred) to 2.5e-3: there lme4 warned that its
# spline fit of the profile failed and interpolated linearly (our SDs' ends agree with its to 1e-4).
LME4_CORR = json.loads((resources.files("bayesglmm.datasets") / "reference" / "profile_correlations.json").read_text())


@pytest.mark.parametrize("case,method", [("sleepstudy_reml", "reml"), ("sleepstudy_reml", "ml"),
                                         ("epil_laplace", "laplace")])
def test_corr_profile_equals_lme4_confint(case, method):
    """The correlation's profile interval (and the SDs' beside it) within the case's tolerance of lme4's."""
    ref = LME4_CORR[case]
    data = bg.datasets.load(ref["dataset"])
    if ref["visit"]:
        data = data.assign(visit=(data["period"] - 2.5) / 1.118)
    fit = bg.GLMM(ref["formula"], data, family=ref["family"]).fit(method)
    vc = fit.variance_components(profile=True)
    row = vc[vc["kind"] == "corr"].iloc[0]
    assert row["conf_low"] < row["estimate"] < row["conf_high"]
    got = fit.profile()
    for key, (low, high) in ref["intervals"].items():
        key = tuple(key.split("|"))
        tol = ref["abs_tol"] if len(key) == 3 else 1e-4 * high
        assert got[key][0] == pytest.approx(low, abs=tol), key
        assert got[key][1] == pytest.approx(high, abs=tol), key


def _slopes_model(G=40, n=10, seed=1):
    """Poisson counts with a correlated random intercept and slope on x in [3, 7] (far from 0: the
    intercept's SD and the correlation are at x = 0, outside the data; the internal frame centres x)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), n)
    x = rng.uniform(0, 4, G * n) + 3.0
    b = rng.standard_normal((G, 2)) @ np.array([[0.6, 0.0], [0.2, 0.4]]).T
    eta = -1.5 + 0.3 * x + b[g, 0] + b[g, 1] * (x - 5)
    df = pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "g": g.astype(str)})
    return bg.GLMM("y ~ x + (1 + x | g)", df, family="poisson")


def _brute_force_excess(model, fit, rho, method):
    """D(ρ) − D(ρ̂) by an independent refit: the user's θ = (θ₀₀, t·ρ, t·√(1 − ρ²)) (lme4's
    lower-triangular factor, corr = ρ for θ₀₀, t ≥ 0) and β, several starts, L-BFGS-B then Nelder–Mead."""
    dev = model.deviance(method, nagq=fit.nagq if method == "agq" else None)
    p_hat = dev.params(fit)
    v_hat = np.concatenate([[p_hat[0], np.hypot(p_hat[1], p_hat[2])], p_hat[3:]])

    def fun(v):
        a, t = abs(v[0]), abs(v[1])
        return dev(np.concatenate([[a, t * rho, t * np.sqrt(max(1 - rho * rho, 0.0))], v[2:]]))

    best, rng = np.inf, np.random.default_rng(0)
    for s in range(3):
        v0 = v_hat * (1 + 0.3 * rng.standard_normal(len(v_hat))) if s else v_hat
        r1 = optimize.minimize(fun, v0, method="L-BFGS-B")
        r2 = optimize.minimize(fun, r1.x, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 5000})
        best = min(best, r1.fun, r2.fun)
    return best - dev(p_hat)


@pytest.mark.parametrize("method", ["laplace", pytest.param("agq", marks=pytest.mark.slow)])
def test_glmm_corr_profile_ends_are_on_the_cutoff(method):
    """At each end of a correlation's profile interval of a Laplace (AGQ) fit, an independent
    multi-start refit in the user's coordinates puts D − D̂ on the χ²₁(0.95) cut-off within 1e-3."""
    model = _slopes_model()
    fit = model.fit(method)
    low, high = fit.profile()[("g", "(Intercept)", "x")]
    rho = fit.variance_components().query("kind == 'corr'")["estimate"].iloc[0]
    assert -1 < low < rho < high < 1
    for end in (low, high):
        assert _brute_force_excess(model, fit, end, method) == pytest.approx(stats.chi2.ppf(0.95, 1), abs=1e-3)


def test_compare_labels_the_correlations_profile_interval():
    """:func:`bayesglmm.compare` gives the correlation's profile interval and says so."""
    cmp = bg.compare(_model("sleepstudy"), methods="reml", marginal=False)
    row = cmp.table().set_index("parameter").loc["corr((Intercept),Days|Subject)"]
    assert row["interval"] == "95% profile likelihood"
    assert row["conf_low"] == pytest.approx(LME4_CORR["sleepstudy_reml"]["intervals"]["Subject|(Intercept)|Days"][0], abs=1e-4)


def test_corr_profile_does_not_depend_on_units():
    """Days in hours: the same correlation, the same interval (the profile runs on the internal frame)."""
    sleep = bg.datasets.load("sleepstudy").assign(Hours=lambda d: 24.0 * d["Days"])
    days = bg.GLMM("Reaction ~ Days + (Days | Subject)", sleep).fit("ml").profile()
    hours = bg.GLMM("Reaction ~ Hours + (Hours | Subject)", sleep).fit("ml").profile()
    assert hours[("Subject", "(Intercept)", "Hours")] == pytest.approx(days[("Subject", "(Intercept)", "Days")],
                                                                       abs=1e-5)


def test_failed_corr_profile_is_nan_with_a_warning(monkeypatch):
    """Constrained refits that fail numerically give no interval (NaN) and a ConvergenceWarning."""
    from bayesglmm.frequentist import profile

    def fail(*args, **kwargs):
        raise np.linalg.LinAlgError("Matrix is not positive definite")

    fit = _model("sleepstudy").fit("ml")
    monkeypatch.setattr(profile, "minimize_with_restart", fail)
    with pytest.warns(bg.ConvergenceWarning, match="correlation of '\\(Intercept\\)' and 'Days'"):
        (row,) = profile.profile_corr_intervals(fit)
    assert row[:3] == ("Subject", "(Intercept)", "Days") and np.isnan(row[3]) and np.isnan(row[4])


def test_a_correlation_next_to_minus_one_still_has_an_interval():
    """Days + 1000: the intercept (at Days = 0, far from the data) and the slope correlate at −0.99999; the
    interval's lower side is 6e-6 wide, inside an absolute xtol of 1e-5, and collapsed onto the estimate
    before the tolerance was made relative to the bracket. The lower end, −0.9999977, is what a
    constrained minimisation of the correlation under D ≤ D̂ + χ²₁(0.95) on the unshifted deviance
    gives (an independent check run once, by hand)."""
    data = bg.datasets.load("sleepstudy")
    fit = bg.GLMM("Reaction ~ Days + (Days | Subject)", data.assign(Days=data["Days"] + 1000)).fit("ml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy overflow noise, no failed refit
        row = fit.variance_components(profile=True).query("kind == 'corr'").iloc[0]
    assert row["conf_low"] < row["estimate"] - 3e-6 and row["estimate"] < row["conf_high"]
    assert row["conf_low"] == pytest.approx(-0.9999977, abs=3e-7)
