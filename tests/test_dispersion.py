"""The dispersion families (negative binomial, beta-binomial, Gamma) on the frequentist engines, against R.

The reference numbers are in ``bayesglmm/datasets/reference/dispersion.json``, written by
``dispersion.R`` beside it (R 4.2.2, glmmTMB 1.1.5, lme4 1.1-31, MASS, geepack 1.3.9), each case with
its R call, e.g. ``glmmTMB(count ~ spp + mined + (1 | site), family = nbinom2, data = Salamanders)``.
glmmTMB's Laplace approximation uses the exact Hessian of the joint log-likelihood in the random
effects, as this package does for these families (``Family.laplace_curvature = "observed"``);
lme4's ``glmer.nb`` uses the Fisher-scoring weights.
"""

import math
import os
import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.datasets import dispersion_reference, from_r_label, info
from bayesglmm.results import NotApplicableError

REF = dispersion_reference()
DATA = {"salamanders": "salamander_counts", "epil": "epil", "nb_offset": "nb_offset_sim", "cbpp": "cbpp",
        "gamma_log": "gamma_sim", "gamma_inverse": "gamma_sim", "nb_slope": "nb_slope_sim"}
FAMILY = {"nbinom2": "negativebinomial", "betabinomial": "betabinomial", "Gamma": "gamma", "gamma": "gamma"}

#: the cases fitted by glmmTMB with a positive-definite Hessian (salamanders_nbinom2_slope is a singular boundary fit)
CASES = ["salamanders_nbinom2", "epil_nbinom2", "nb_offset_nbinom2", "cbpp_betabinomial", "gamma_log",
         "gamma_inverse", "nb_slope_nbinom2"]


def _dataset(case):
    return next(v for k, v in DATA.items() if case.startswith(k))


def _model(case):
    ref = REF[case]
    name = _dataset(case)
    return bg.GLMM(ref["formula"], bg.datasets.load(name), family=FAMILY[ref["family"]], link=ref["link"])


def _labels(case, terms):
    cat = info(_dataset(case)).categorical
    return {from_r_label(t, cat): v for t, v in terms.items()}


def _dispersion(ref):
    return ref["theta"] if "theta" in ref else ref["shape"]


@pytest.fixture(scope="module")
def fits():
    out = {}
    for case in CASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cbpp's herd SD is on its boundary: the singular-fit warning
            out[case] = _model(case).fit("laplace")
    return out


@pytest.mark.parametrize("case", CASES)
def test_laplace_matches_glmmtmb(fits, case):
    """Laplace: β within 2e-4, SEs within 1e-3 relative, SDs within 1e-3 relative (an SD on its boundary
    within 1e-3), correlations within 1e-3, the dispersion (read from the "dispersion" row) within 2e-3
    relative, the log-likelihood within 1e-3 (measured: ≤ 2e-5, 2e-5, 6e-6, 1e-8, 1e-5, 4e-5, 2e-5 of
    each; log-likelihoods within 1e-7)."""
    ref, fit = REF[case], fits[case]
    fe = fit.fixed_effects().set_index("term")
    fixef, se = _labels(case, ref["fixef"]), _labels(case, ref["se"])
    assert set(fixef) == set(fe.index)
    for term in fixef:
        assert abs(fe.loc[term, "estimate"] - fixef[term]) < 2e-4, term
        assert abs(fe.loc[term, "std_error"] / se[term] - 1) < 1e-3, term
    vc = fit.variance_components()
    disp = vc[vc["kind"] == "dispersion"]
    assert len(disp) == 1 and disp["group"].iloc[0] == "Residual"
    assert disp["term"].iloc[0] == ("shape" if ref["family"].lower() == "gamma" else "theta")
    assert abs(disp["estimate"].iloc[0] / _dispersion(ref) - 1) < 2e-3
    assert disp["estimate"].iloc[0] == fit.dispersion
    for group, parts in ref["varcorr"].items():
        for term, sd in parts["sd"].items():
            ours = vc[(vc["kind"] == "sd") & (vc["group"] == group) & (vc["term"] == term)]["estimate"].iloc[0]
            assert (abs(ours - sd) < 1e-3) if sd < 1e-2 else (abs(ours / sd - 1) < 1e-3), (group, term)
        for pair, r in parts.get("cor", {}).items():
            t1, t2 = pair.split(":")
            ours = vc[(vc["kind"] == "corr") & (vc["group"] == group) & (vc["term"] == t1) & (vc["term2"] == t2)]
            assert abs(ours["estimate"].iloc[0] - r) < 1e-3
    assert abs(fit.loglik - ref["loglik"]) < 1e-3
    assert fit.aic == pytest.approx(ref["AIC"], abs=2e-3)  # the dispersion counted among the parameters


def test_glmer_nb_differs_from_glmmtmb_only_by_its_laplace_weights(fits):
    """lme4's glmer.nb puts the Fisher weights in the Laplace determinant, glmmTMB the exact Hessian: on
    Salamanders their intercepts differ by 0.020 and θ by 6e-4 relative. The same family with
    ``laplace_curvature = "fisher"`` reproduces glmer.nb (measured: β within 3e-6, θ 1e-5 relative, logLik
    4e-8), so the difference is that choice alone; the package follows glmmTMB."""
    from bayesglmm.families import NegativeBinomial

    class FisherNB(NegativeBinomial):
        laplace_curvature = "fisher"

    nb = REF["salamanders_glmer_nb"]
    model = bg.GLMM(REF["salamanders_nbinom2"]["formula"], bg.datasets.load("salamander_counts"), family=FisherNB())
    fit = model.fit("laplace")
    fe = fit.fixed_effects().set_index("term")["estimate"]
    for term, v in _labels("salamanders", nb["fixef"]).items():
        assert abs(fe[term] - v) < 2e-4, term
    assert abs(fit.dispersion / nb["theta"] - 1) < 2e-3
    assert abs(fit.loglik - nb["loglik"]) < 1e-3
    assert abs(fits["salamanders_nbinom2"].beta[0] - fit.beta[0]) > 0.01  # the two Laplace approximations differ


@pytest.mark.parametrize("case", ["salamanders_nbinom2", "gamma_log", "nb_offset_nbinom2"])
def test_predictions_match_glmmtmb(fits, case):
    """predict(se.fit = TRUE) on both scales, population level and conditional on the modes (which move
    with the dispersion too: its log φ is in the joint covariance): within 1e-4 and 1e-4 relative
    (measured ≤ 2.3e-5 and 1.2e-5)."""
    ref, fit = REF[case], fits[case]
    new = bg.datasets.load(_dataset(case)).head(5)
    for key, values in ref["predictions"].items():
        scale, level = key.split("_")
        p = fit.predict(new, kind="link" if scale == "link" else "mean", random_effects=level == "conditional")
        np.testing.assert_allclose(p["estimate"], values["fit"], atol=1e-4, err_msg=key)
        np.testing.assert_allclose(p["std_error"], values["se"], rtol=1e-4, err_msg=key)


@pytest.mark.parametrize("case,nagq", [("salamanders_nbinom2", 25), ("gamma_log", 25)])
def test_agq_equals_the_exact_integral_at_glmmtmbs_estimates(case, nagq):
    """AGQ's log-likelihood at glmmTMB's estimates equals R's integrate() of each group's likelihood
    (loglik_integrated) to 1e-6, and the Laplace deviance there equals glmmTMB's logLik to 1e-6."""
    ref = REF[case]
    model = _model(case)
    fe = _labels(case, ref["fixef"])
    group, parts = next(iter(ref["varcorr"].items()))
    x = np.array([parts["sd"]["(Intercept)"]] + [fe[t] for t in model.design.fixed_names]
                 + [math.log(_dispersion(ref))])
    agq = model.deviance("agq", nagq=nagq)
    assert agq.names[-1] == ("log(shape)" if model.family.dispersion_name == "shape" else "log(theta)")
    assert agq.loglik(x) == pytest.approx(ref["loglik_integrated"], abs=1e-6)
    assert model.deviance("laplace").loglik(x) == pytest.approx(ref["loglik"], abs=1e-6)


def test_agq_fit_chooses_its_nodes_with_a_dispersion():
    """fit("agq") optimises the dispersion with the rest and settles its rule; the maximum lies above the
    exact log-likelihood at glmmTMB's (Laplace) estimates, by little."""
    model = _model("salamanders_nbinom2")
    fit = model.fit("agq")
    assert fit.converged and fit.nagq_change is not None and fit.nagq_change < 1e-6
    exact = REF["salamanders_nbinom2"]["loglik_integrated"]
    assert 0 <= fit.loglik - exact < 1e-3
    assert abs(fit.dispersion / REF["salamanders_nbinom2"]["theta"] - 1) < 2e-3


def test_profile_interval_of_the_dispersion_and_the_sd(fits):
    """Profile intervals of θ and the site SD as glmmTMB's confint(method = "profile") (measured: within
    1e-4 relative)."""
    fit = fits["salamanders_nbinom2"]
    ref = REF["salamanders_nbinom2"]["profile_ci"]["ours"]
    vc = fit.variance_components(profile=True).set_index("term")
    assert vc.loc["theta", "conf_low"] == pytest.approx(ref["theta"]["lower"], rel=2e-3)
    assert vc.loc["theta", "conf_high"] == pytest.approx(ref["theta"]["upper"], rel=2e-3)
    assert vc.loc["(Intercept)", "conf_low"] == pytest.approx(ref["sd:site:(Intercept)"]["lower"], rel=2e-3)
    assert vc.loc["(Intercept)", "conf_high"] == pytest.approx(ref["sd:site:(Intercept)"]["upper"], rel=2e-3)


def test_beta_binomial_profile_lets_the_sd_leave_its_boundary(fits):
    """cbpp's beta-binomial: glmmTMB's profile of θ stops at 26.4, its herd SD (a log SD) stuck near 0;
    glmmTMB's own fits with θ fixed (map = list(betad = NA)) show the constrained maximum falls by
    qchisq(0.95, 1)/2 only near θ = 60.2, the SD growing to 0.56: the upper end here."""
    fit = fits["cbpp_betabinomial"]
    ref = REF["cbpp_betabinomial"]
    at = {round(e["theta"], 1): e["loglik"] for e in ref["fixed_theta"]}
    drop = ref["loglik"] - at[60.2]
    assert drop == pytest.approx(1.920729, abs=1e-3)  # χ²₁(0.95)/2: 60.2 is where glmmTMB's fits reach the cut-off
    vc = fit.variance_components(profile=True).set_index("term")
    assert vc.loc["theta", "conf_high"] == pytest.approx(60.2, abs=0.5)
    assert vc.loc["theta", "conf_low"] == pytest.approx(ref["profile_ci"]["ours"]["theta"]["lower"], rel=2e-3)


def test_gamma_pql_matches_glmmpql_and_gee_matches_geeglm():
    """PQL: MASS::glmmPQL(family = Gamma(link = "log")), its residual SD the working model's √(1/shape): β and
    SEs to 1e-6, the SD and shape to 1e-5. GEE (exchangeable): geepack's geeglm, β within 2e-4 and robust
    SEs within 2e-3 relative (statsmodels' and geepack's moment estimators of the scale and α differ slightly)."""
    model = _model("gamma_log")
    pql = model.fit("pql")
    ref = REF["gamma_log_pql"]
    fe = pql.fixed_effects().set_index("term")
    for term, v in _labels("gamma_log", ref["fixef"]).items():
        assert fe.loc[term, "estimate"] == pytest.approx(v, abs=1e-6)
    for term, v in _labels("gamma_log", ref["se"]).items():
        assert fe.loc[term, "std_error"] == pytest.approx(v, rel=1e-5)
    vc = pql.variance_components().set_index("term")
    assert vc.loc["(Intercept)", "estimate"] == pytest.approx(ref["sd"], rel=1e-5)
    assert vc.loc["shape", "estimate"] == pytest.approx(ref["shape"], rel=1e-5)
    assert vc.loc["shape", "kind"] == "dispersion"
    with pytest.raises(ValueError, match="would fix the gamma family's shape"):
        model.fit("pql", dispersion="fixed")
    gee = model.fit("gee")
    ref = REF["gamma_log_gee"]
    fe = gee.fixed_effects().set_index("term")
    for (term, v), s in zip(_labels("gamma_log", ref["fixef"]).items(), ref["se"]):
        assert fe.loc[term, "estimate"] == pytest.approx(v, abs=2e-4)
        assert fe.loc[term, "std_error"] == pytest.approx(s, rel=2e-3)


@pytest.mark.parametrize("case", ["salamanders_nbinom2", "cbpp_betabinomial"])
@pytest.mark.parametrize("method", ["pql", "gee"])
def test_pql_and_gee_refuse_nb_and_beta_binomial_with_the_reason(case, method):
    with pytest.raises(NotApplicableError, match="laplace' or 'agq'"):
        _model(case).fit(method)


def test_printed_like_glmer_nb_and_saved_as_data(fits):
    fit = fits["salamanders_nbinom2"]
    text = str(fit)
    assert " Family: Negative Binomial(0.9424)  ( log )" in text
    assert "Gamma(shape = 2.48)" in str(fits["gamma_log"])
    assert "theta" in fit.summary()["parameter"].to_numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "nb.nc")
        bg.save(fit, path)
        back = bg.load(path)
    assert back.dispersion == fit.dispersion and back.loglik == fit.loglik and back.aic == fit.aic
    pd.testing.assert_frame_equal(back.variance_components(), fit.variance_components())
    new = bg.datasets.load("salamander_counts").head(4)
    pd.testing.assert_frame_equal(back.predict(new), fit.predict(new))


def test_simulate_from_a_truth_with_a_dispersion(fits):
    """Counts drawn with θ from a fit: their variance as NB2's μ + μ²/θ (a check of the family's draws);
    the truth table names θ; a dict truth needs it."""
    model = _model("salamanders_nbinom2")
    study = bg.simulation_study(model, n_reps=2, methods=("laplace",), truth=fits["salamanders_nbinom2"],
                                random_seed=3, progress=False)
    table = study.truth.table(model).set_index("parameter")["truth"]
    assert table["theta"] == pytest.approx(fits["salamanders_nbinom2"].dispersion)
    with pytest.raises(ValueError, match="needs 'theta'"):
        bg.simulation_study(model, n_reps=1, methods=("laplace",), truth={"beta": np.zeros(8), "sd": {"site": 0.5}},
                            progress=False)
    rng = np.random.default_rng(0)
    mu, theta = np.full(200_000, 3.0), 1.5
    y = model.family.sample(mu, sigma=theta, rng=rng)
    assert y.mean() == pytest.approx(3.0, rel=0.01) and y.var() == pytest.approx(3.0 + 9.0 / theta, rel=0.02)


def test_dispersion_prior_is_proper_scaled_and_named():
    from bayesglmm.priors import Flat, HalfCauchy, ImproperPriorError

    model = _model("salamanders_nbinom2")
    table = model.priors.table().set_index("parameter")["prior"]
    assert table["dispersion (1/√theta)"] == "HalfNormal(sigma=2.5)"
    data = bg.datasets.load("salamander_counts")
    custom = bg.GLMM(model.formula, data, family="negativebinomial", priors={"dispersion": HalfCauchy(1.0)})
    assert custom.priors.dispersion == HalfCauchy(1.0)
    with pytest.raises(ImproperPriorError):
        bg.GLMM(model.formula, data, family="negativebinomial", priors={"dispersion": Flat})
    with pytest.raises(KeyError, match="names no parameter"):
        bg.GLMM(model.formula, data, family="poisson", priors={"dispersion": HalfCauchy(1.0)})


@pytest.mark.slow
def test_pymc_log_likelihood_equals_the_family_at_a_point():
    """The PyMC graph's observed variable (the family's own: NegativeBinomial, BetaBinomial, Gamma) has the
    log density of Family.loglik_obs at the same η and dispersion."""
    import pymc as pm

    for case in ("salamanders_nbinom2", "cbpp_betabinomial", "gamma_log"):
        model = _model(case)
        pmm = model.pymc_model()
        rng = np.random.default_rng(1)
        point = {k: v + 0.1 * rng.normal(size=np.shape(v)) for k, v in pmm.initial_point().items()}
        outs = [pmm.logp(vars=[pmm["y"]], sum=True), pmm["beta"], pmm[model.design.random[0].label],
                pmm[model.family.dispersion_name]]
        fn = pmm.compile_fn(pmm.replace_rvs_by_values(outs), inputs=pmm.value_vars, point_fn=False)
        logp, beta, b, phi = fn(*[point[v.name] for v in pmm.value_vars])
        assert np.isfinite(logp)
        assert logp == pytest.approx(model.loglik(beta, [b], float(phi)), rel=1e-9, abs=1e-8), case


def test_marginalize_refuses_the_gamma_inverse_link_by_name():
    """marginalize=True integrates NB (log), beta-binomial and Gamma (log) (tests/test_marginal_dispersion.py);
    a Gamma mean by the inverse link, which the mode search cannot keep positive, is refused naming it."""
    model = bg.GLMM("y ~ x + trt + (1 | g)", bg.datasets.load("gamma_sim"), family="gamma")
    with pytest.raises(NotApplicableError, match="inverse"):
        model.sample(marginalize=True, draws=10, tune=10, chains=1)


@pytest.mark.slow
def test_nuts_posterior_agrees_with_ml():
    """The posterior medians of the coefficients, the site SD and θ within 0.3 posterior SD of the Laplace
    estimates (vague default priors on 644 counts), R-hat ≤ 1.01."""
    model = _model("salamanders_nbinom2")
    post = model.sample(draws=1000, tune=1000, chains=2, random_seed=11)
    ml = model.fit("laplace")
    s = post.summary().set_index("parameter")
    m = ml.summary().set_index("parameter")
    assert s["r_hat"].max() <= 1.01
    for name in list(model.design.fixed_names) + ["theta"]:
        assert abs(s.loc[name, "median"] - m.loc[name, "estimate"]) < 0.3 * s.loc[name, "std_error"], name
    assert s.loc["theta", "kind"] == "dispersion"


@pytest.mark.slow
def test_prior_sweep_and_power_scaling_cover_the_dispersion():
    """A sweep over dispersion priors builds one graph (one compilation, then none); power-scaling lists the
    dispersion's scale among the top-level priors."""
    from bayesglmm.priors import Exponential, HalfNormal
    from bayesglmm.sensitivity import prior_sensitivity

    model = _model("nb_offset_nbinom2")
    sets = {"default": {}, "tight": {"dispersion": HalfNormal(0.5)}, "exponential": {"dispersion": Exponential(2.0)}}
    res = prior_sensitivity(model, sets, method="refit", draws=200, tune=200, chains=2, random_seed=2)
    assert all(c == 0 for c in list(res.compilations.values())[1:])  # one graph for every prior set
    table = res.table()
    assert set(sets) <= set(table[table["parameter"] == "theta"]["prior"])
    power = prior_sensitivity(res.posteriors["default"], method="power")
    assert "dispersion_scale" in set(power.table()["parameter"])


def test_complete_pooling_glm_of_a_dispersion_family_is_glmmtmbs():
    """The GLM without random effects (bg.pooling's complete pooling, bg.naive_vs_clustered's naive GLM):
    ML in (β, log θ) as glmmTMB(count ~ spp + mined, family = nbinom2): β within 1e-4, SEs (the full
    Hessian's) within 1e-4 relative (measured 1e-5 and 3e-6)."""
    from bayesglmm.teaching import glm_estimates

    ref = REF["salamanders_glm_nbinom2"]
    model = _model("salamanders_nbinom2")
    beta, V = glm_estimates(model.design, model.family, model.design.X)
    fixef, se = _labels("salamanders", ref["fixef"]), _labels("salamanders", ref["se"])
    for j, term in enumerate(model.design.fixed_names):
        assert beta[j] == pytest.approx(fixef[term], abs=1e-4)
        assert np.sqrt(V[j, j]) == pytest.approx(se[term], rel=1e-4)
    table = bg.naive_vs_clustered(model).table()
    assert {"glm (naive)", "glm (cluster-robust)", "glmm"} <= set(table["method"])
    assert bg.pooling(model, group="site").complete == pytest.approx(fixef["(Intercept)"], abs=1e-4)


def test_no_overdispersion_is_a_boundary_flag():
    rng = np.random.default_rng(2)
    data = pd.DataFrame({"g": np.repeat(np.arange(30), 10).astype(str), "x": rng.normal(size=300),
                         "y": rng.poisson(3, 300)})
    with pytest.warns(bg.ConvergenceWarning, match="limit of no extra variation"):
        fit = bg.GLMM("y ~ x + (1 | g)", data, family="nbinom2").fit("laplace")
    assert fit.singular and any("Poisson" in f.message for f in fit.flags if f.kind == "singular")
