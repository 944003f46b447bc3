"""No answer depends on where or in what units a covariate (or a Gaussian response) is measured.

Every engine fits the internal parametrization of :mod:`bayesglmm.scaling` and maps back; these
tests shift and scale the covariates by 10⁻⁸ … 10¹⁰ and check that every method returns the same
slopes (times the scale), SDs and log-likelihood. Before the internal frame, sleepstudy's REML
slope with ``Days + 2010`` was 0.687 instead of 10.467 (logLik −946.04 against −893.23), reported
converged; Poisson PQL with x + 2000 gave 0.003 instead of 0.82; a binary ``(x | g)`` with x + 100
stopped 2.6 short in log-likelihood; NUTS under the default priors put the slope at −0.0004.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.scaling import column_frame, full_rank, scale_design

SHIFTS_SCALES = [(2010.0, 1.0), (1e8, 1.0), (0.0, 1e-8), (0.0, 1e10), (-3e4, 1e-3)]


def _data(seed=2, J=30, m=10):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), m)
    x = rng.normal(size=J * m)
    b0, b1 = rng.normal(0, 0.9, J), rng.normal(0, 0.5, J)
    eta = 0.2 + 0.6 * x + b0[g]
    return pd.DataFrame({
        "y": 1 + 0.6 * x + b0[g] + b1[g] * x + rng.normal(size=J * m),
        "yb": rng.binomial(1, 1 / (1 + np.exp(-eta))),
        "yp": rng.poisson(np.exp(eta)),
        "x": x, "g": g,
    })


def _summary(fit, scale):
    """Slope × scale, the SDs (a slope's × scale), log-likelihood: what must not change."""
    vc = fit.variance_components()
    sd = vc[vc["kind"] == "sd"]
    sds = sd["estimate"].to_numpy(dtype=float) * np.where(sd["term"].to_numpy() == "x", scale, 1.0)
    return fit.beta[1] * scale, sds, getattr(fit, "loglik", np.nan)


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.mark.parametrize("formula,family,methods", [
    ("yb ~ x + (1 | g)", "bernoulli", ("laplace", "agq", "pql", "gee")),
    ("yp ~ x + (1 | g)", "poisson", ("laplace", "agq", "pql", "gee")),
    ("y ~ x + (1 | g)", "gaussian", ("ml", "laplace")),
    ("y ~ x + (x || g)", "gaussian", ("ml", "reml")),
])
def test_every_method_is_invariant_to_the_covariates_origin_and_units(data, formula, family, methods):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no false separation, singular or convergence warning either
        for method in methods:
            ref = _summary(bg.GLMM(formula, data, family=family).fit(method), 1.0)
            for shift, scale in SHIFTS_SCALES:
                if "||" in formula and shift:
                    continue  # an uncorrelated random slope is a different model after a shift
                fit = bg.GLMM(formula, data.assign(x=data.x * scale + shift), family=family).fit(method)
                got = _summary(fit, scale)
                assert got[0] == pytest.approx(ref[0], rel=1e-6), (method, shift, scale)
                np.testing.assert_allclose(got[1], ref[1], rtol=1e-5, err_msg=f"{method} {shift} {scale}")
                if method != "pql" and method != "gee":  # REML's moves by −log c when x is scaled by c, as lmer's
                    expected = ref[2] - (np.log(scale) if method == "reml" else 0.0)
                    assert got[2] == pytest.approx(expected, abs=1e-6), (method, shift, scale)
                assert fit.flags == []


def test_reml_slope_and_loglik_with_a_year_valued_covariate():
    """The issue's case: sleepstudy with Days + 2010. REML's log-likelihood does not move under a
    shift (a unit-determinant change of X) and moves by −log c when x is scaled by c, as lmer's."""
    ss = bg.datasets.load("sleepstudy")
    base = bg.GLMM("Reaction ~ Days + (1 | Subject)", ss).fit("reml")
    year = bg.GLMM("Reaction ~ Year + (1 | Subject)", ss.assign(Year=ss.Days + 2010)).fit("reml")
    assert year.beta[1] == pytest.approx(10.467286, rel=1e-6) and base.beta[1] == pytest.approx(10.467286, rel=1e-6)
    assert year.loglik == pytest.approx(base.loglik, abs=1e-7) and base.loglik == pytest.approx(-893.2325, abs=1e-3)
    hours = bg.GLMM("Reaction ~ Hours + (1 | Subject)", ss.assign(Hours=ss.Days * 24.0)).fit("reml")
    assert hours.loglik == pytest.approx(base.loglik - np.log(24.0), abs=1e-7)
    np.testing.assert_allclose(hours.variance_components()["estimate"], base.variance_components()["estimate"],
                               rtol=1e-6)


@pytest.mark.parametrize("shift,scale", [(1e10, 1.0), (0.0, 1e-8), (-5e3, 1e6)])
def test_a_gaussian_response_on_any_scale(data, shift, scale):
    """y + 1e10 gave SDs 0.002/1.73 instead of 0.93/1.00: the response is centred and scaled too
    (β, the SDs, σ by its scale; the ML log-likelihood by −n log c, REML's too)."""
    y = data.y * scale + shift
    ref = bg.GLMM("y ~ x + (1 | g)", data.assign(y=(y - shift) / scale)).fit("reml")  # the data y holds
    fit = bg.GLMM("y ~ x + (1 | g)", data.assign(y=y)).fit("reml")
    assert fit.beta[1] / scale == pytest.approx(ref.beta[1], rel=1e-6)
    np.testing.assert_allclose(fit.variance_components()["estimate"] / scale, ref.variance_components()["estimate"],
                               rtol=1e-5)
    assert fit.loglik + (len(data) - 2) * np.log(scale) == pytest.approx(ref.loglik, abs=1e-5)


@pytest.mark.filterwarnings("ignore:singular fit:bayesglmm.results.ConvergenceWarning")  # a singular fit is incidental here
@pytest.mark.parametrize("family,method", [("gaussian", "ml"), ("bernoulli", "laplace"), ("bernoulli", "agq")])
def test_a_correlated_random_slope_on_a_shifted_covariate(data, family, method):
    """(x | g) with x + h is the same model (Σ unstructured): the same log-likelihood and slope SD,
    and the intercept's SD and correlation those of the intercept at x = −h. A binary fit with
    x + 100 stopped at −167.50 instead of −164.87, reported converged."""
    y = "y" if family == "gaussian" else "yb"
    ref = bg.GLMM(f"{y} ~ x + (x | g)", data, family=family).fit(method)
    S = ref.covariances()[0]
    for h in (10.0, 100.0, 2000.0):
        fit = bg.GLMM(f"{y} ~ x + (x | g)", data.assign(x=data.x + h), family=family).fit(method)
        assert fit.converged
        assert fit.loglik == pytest.approx(ref.loglik, abs=1e-6)
        T = np.array([[1.0, -h], [0.0, 1.0]])  # b0 at x = 0 of the shifted x is b0 − h b1
        np.testing.assert_allclose(fit.covariances()[0], T @ S @ T.T, rtol=2e-4, atol=1e-8)
        assert fit.beta[1] == pytest.approx(ref.beta[1], rel=1e-5)
        # the conditional modes and their SEs are the same effects in the other basis
        re0 = ref.random_effects().pivot(index="level", columns="term", values="estimate")
        re1 = fit.random_effects().pivot(index="level", columns="term", values="estimate")
        np.testing.assert_allclose(re1["x"], re0["x"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(re1["(Intercept)"], re0["(Intercept)"] - h * re0["x"], rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:singular fit:bayesglmm.results.ConvergenceWarning")  # a singular fit is incidental here
def test_profiles_and_deviance_in_the_users_coordinates(data):
    """The profile interval of a random slope's SD scales with x and does not move with a shift;
    model.deviance at a shifted fit's estimates is −2 logLik with a vanishing gradient."""
    ref = bg.GLMM("yb ~ x + (x | g)", data, family="bernoulli").fit("laplace")
    ci = ref.variance_components(profile=True).set_index("term").loc["x"]
    for shift, scale in [(100.0, 1.0), (0.0, 1e-6)]:
        model = bg.GLMM("yb ~ x + (x | g)", data.assign(x=data.x * scale + shift), family="bernoulli")
        fit = model.fit("laplace")
        got = fit.variance_components(profile=True)
        got = got[got["kind"] == "sd"].set_index("term").loc["x"]
        np.testing.assert_allclose([got.conf_low * scale, got.conf_high * scale], [ci.conf_low, ci.conf_high],
                                   rtol=2e-3)
        dev = model.deviance("laplace")
        x = dev.params(fit)
        f, g = dev.value_and_grad(x)
        assert f == pytest.approx(-2 * fit.loglik, abs=1e-6)
        assert dev(x) == pytest.approx(f, abs=1e-9)
        assert np.max(np.abs(g * np.maximum(np.abs(x), 1e-3))) < 1e-3  # at the optimum, in relative terms


def test_no_false_separation_or_rank_deficiency():
    """x + 2000 in a binary Laplace fit flagged the intercept as separated; x + 1e8 was called rank
    deficient. An exactly collinear column still is."""
    d = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = bg.GLMM("yb ~ x + (1 | g)", d.assign(x=d.x + 2000), family="bernoulli").fit("laplace")
    assert fit.flags == []
    assert bg.GLMM("yb ~ x + (1 | g)", d.assign(x=d.x + 1e8), family="bernoulli").design.X.shape == (len(d), 2)
    with pytest.raises(ValueError, match="rank deficient"):
        bg.GLMM("yb ~ x + z + (1 | g)", d.assign(z=3 * d.x + 1e8), family="bernoulli")
    assert full_rank(np.c_[np.ones(5), np.arange(5.0) * 1e-8]) and not full_rank(np.c_[np.ones(5), np.full(5, 7.0)])
    # each column's tolerance is its own rounding: ohio's age*smoke with age + 1e7 was called rank
    # deficient (the shifted age's noise judged smoke against age:smoke)
    oh = bg.datasets.load("ohio")
    assert bg.GLMM("resp ~ age * smoke + (1 | id)", oh.assign(age=oh.age + 1e7), family="bernoulli").design.X.shape[1] == 4


def test_the_frame_is_orthonormal_and_exact():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40) + 2015
    X = np.c_[np.ones(40), x, x**2]  # a year and its square: nearly collinear on the raw scale
    frame = column_frame(X)
    Xt = X @ frame.A
    np.testing.assert_allclose(Xt.T @ Xt / 40, np.eye(3), atol=1e-8)
    assert frame.log_det == pytest.approx(np.linalg.slogdet(frame.A)[1], abs=1e-6)
    assert X @ frame.one == pytest.approx(np.ones(40))


def test_the_internal_design_is_an_equivalent_model():
    d = _data()
    model = bg.GLMM("y ~ x + (x | g)", d.assign(x=d.x * 1e4 + 7e5, y=d.y + 1e9))
    sc = scale_design(model.design, model.family)
    internal = sc.design
    assert np.allclose(internal.X.std(axis=0)[1:], 1.0) and abs(internal.y.mean()) < 1e-6
    beta_t = np.array([0.3, -1.2])
    b_t = np.random.default_rng(1).normal(size=(30, 2))
    eta_t = internal.offset + internal.X @ beta_t + np.sum(b_t[internal.random[0].index] * internal.random[0].Xr, 1)
    b = b_t @ sc.effect_map(0).T
    eta = model.design.offset + model.design.X @ sc.beta(beta_t) + np.sum(b[model.design.random[0].index]
                                                                              * model.design.random[0].Xr, 1)
    np.testing.assert_allclose(sc.y_shift + sc.y_scale * eta_t, eta, rtol=1e-12)
    np.testing.assert_allclose(sc.beta_internal(sc.beta(beta_t)), beta_t, atol=1e-6)  # β₀ holds the 1e9 shift


@pytest.mark.slow
def test_default_priors_and_the_samplers_coordinates_do_not_depend_on_a_shift():
    """The default intercept prior is on the intercept at the columns' means, and NUTS moves β in
    the frame of X: the log density in the sampler's coordinates is the same function whether x is
    centred, shifted by 2000 or in other units (up to the constant log|det A|), so NUTS sees the same
    posterior (before, N(0, 5) on the raw intercept put the slope at −0.0004 ± 0.0014, not 0.83)."""
    d = _data()
    models = [bg.GLMM("yp ~ x + (1 | g)", d.assign(x=d.x * c + h), family="poisson") for h, c in
              [(0.0, 1.0), (2000.0, 1.0), (0.0, 1e-6)]]
    assert "at the columns' means" in models[1].priors.table().set_index("parameter").loc["(Intercept)", "prior"]
    points = np.random.default_rng(3).normal(size=(4, 2))
    values = []
    for model in models:
        pm_model = model.pymc_model()
        logp = pm_model.compile_logp()
        ip = pm_model.initial_point()
        assert "beta_linearframe__" in ip
        row = []
        for w in points:
            ip = dict(ip)
            ip["beta_linearframe__"] = w
            row.append(logp(ip))
        values.append(np.asarray(row))
    for v in values[1:]:
        np.testing.assert_allclose(np.diff(v), np.diff(values[0]), rtol=1e-8, atol=1e-8)


@pytest.mark.slow
def test_nuts_slope_unchanged_by_a_shift():
    d = _data()
    posts = [bg.GLMM("yp ~ x + (1 | g)", d.assign(x=d.x + h), family="poisson").sample(
        draws=500, tune=500, chains=2, random_seed=1, progressbar=False, diagnose=False) for h in (0.0, 2000.0)]
    a, b = (p.fixed_effects().set_index("term").loc["x"] for p in posts)
    assert abs(a.estimate - b.estimate) < 0.25 * a.std_error and abs(a.std_error / b.std_error - 1) < 0.2


def test_separation_is_found_exactly_whatever_the_parametrization():
    """The separation check is a linear program on X, not the size of the estimates: ohio's
    age*smoke with age + 2000 flagged the intercept, smoke and age:smoke (estimates 431, −209) though
    the likelihood is the unshifted one's; a genuine separation by x > 0.3 is named as a combination
    of the intercept and x."""
    oh = bg.datasets.load("ohio")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for shift in (0.0, 2000.0):
            for formula in ("resp ~ age * smoke + (1 | id)", "resp ~ age + I(age**2) + (1 | id)",
                            "resp ~ 0 + C(smoke) + age + (1 | id)"):
                assert bg.GLMM(formula, oh.assign(age=oh.age + shift), family="bernoulli").fit("laplace").flags == []
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    df = pd.DataFrame({"y": (x > 0.3).astype(int), "x": x + 2000, "g": np.repeat(np.arange(20), 10)})
    with pytest.warns(bg.SeparationWarning, match=r"a combination of '\(Intercept\)', 'x'|a combination of 'x', "
                                                   r"'\(Intercept\)'"):
        fit = bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli").fit("laplace")
    assert [f.kind for f in fit.flags].count("separation") == 1


def test_a_profile_that_cannot_be_computed_says_so():
    """(Days | Subject) with Days + 500: the intercept's SD is at a day 500 from the data, and its
    profile's refits run into factors that are not positive definite (a LinAlgError before); it is
    given as NaN with a ConvergenceWarning naming it, the slope's and σ's as without the shift."""
    ss = bg.datasets.load("sleepstudy")
    ref = bg.GLMM("Reaction ~ Days + (Days | Subject)", ss).fit("ml").variance_components(profile=True)
    fit = bg.GLMM("Reaction ~ Days + (Days | Subject)", ss.assign(Days=ss.Days + 500)).fit("ml")
    with pytest.warns(bg.ConvergenceWarning, match="no profile interval for the SD of '\\(Intercept\\)'"):
        got = fit.variance_components(profile=True)
    assert got[["conf_low", "conf_high"]].iloc[0].isna().all()
    for row in (1, 3):  # the slope's SD and σ
        np.testing.assert_allclose(got[["conf_low", "conf_high"]].iloc[row], ref[["conf_low", "conf_high"]].iloc[row],
                                   rtol=1e-4)


def test_marginal_coefficients_do_not_depend_on_a_shift():
    """marginal_fixed_effects with age + 10⁸ gave age 0.0 (SE 0.0): least squares on the raw X, and
    draws of (θ, β) on the user's scale. Both are on the internal design now."""
    oh = bg.datasets.load("ohio")
    ref = bg.GLMM("resp ~ age + smoke + (age | id)", oh, family="bernoulli").fit("laplace")
    ref = ref.marginal_fixed_effects(draws=200).set_index("term")
    for shift, scale in [(1e8, 1.0), (0.0, 1e10)]:
        fit = bg.GLMM("resp ~ age + smoke + (age | id)", oh.assign(age=oh.age * scale + shift),
                      family="bernoulli").fit("laplace")
        got = fit.marginal_fixed_effects(draws=200).set_index("term")
        assert got.loc["age", "estimate"] * scale == pytest.approx(ref.loc["age", "estimate"], rel=1e-4)
        assert got.loc["age", "std_error"] * scale == pytest.approx(ref.loc["age", "std_error"], rel=1e-4)
        assert got.loc["smoke", "std_error"] == pytest.approx(ref.loc["smoke", "std_error"], rel=1e-4)


def test_lrt_sees_nested_models_whatever_the_shift():
    """lrt refused Days + 1e7 against the intercept-only model as 'not nested' (least squares on the raw
    X); the statistic equals the unshifted one."""
    ss = bg.datasets.load("sleepstudy")
    stats = []
    for shift in (0.0, 1e7):
        d = ss.assign(Days=ss.Days + shift)
        full = bg.GLMM("Reaction ~ Days + (1 | Subject)", d).fit("ml")
        reduced = bg.GLMM("Reaction ~ 1 + (1 | Subject)", d).fit("ml")
        stats.append(float(bg.lrt(full, reduced)["statistic"].iloc[0]))
    assert stats[1] == pytest.approx(stats[0], rel=1e-6)


def test_teaching_tools_do_not_depend_on_a_shift():
    """naive_vs_clustered's GLMs and pooling's no/complete-pooling GLMs on the raw columns: ohio's age
    + 1e8 gave a slope of −1.8e-8 (−0.113), sleepstudy's Days + 1e8 no-pooling slopes of 3e-6 (21.76)."""
    oh = bg.datasets.load("ohio")
    tables = [bg.naive_vs_clustered(bg.GLMM("resp ~ age + smoke + (1 | id)", oh.assign(age=oh.age + h),
                                            family="bernoulli")).table().set_index(["term", "method"])
              for h in (0.0, 1e8)]
    np.testing.assert_allclose(tables[1].loc["age", ["estimate", "std_error"]],
                               tables[0].loc["age", ["estimate", "std_error"]], rtol=1e-6)
    ss = bg.datasets.load("sleepstudy")
    pools = [bg.pooling(bg.GLMM("Reaction ~ Days + (Days | Subject)", ss.assign(Days=ss.Days + h))).table()
             for h in (0.0, 1e8)]
    for col in ("no_pooling_slope", "complete_pooling_slope", "partial_pooling_slope"):
        np.testing.assert_allclose(pools[1][col], pools[0][col], rtol=1e-6)
