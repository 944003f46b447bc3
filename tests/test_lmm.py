import pytest

import bayesglmm as bg

from .reference import LMER


@pytest.mark.parametrize("name,method", list(LMER))
def test_lmm_equals_lmer(name, method):
    """≤ 1e-4 relative on β, SEs, SDs, the correlation and the log-likelihood."""
    ref = LMER[(name, method)]
    meta = bg.datasets.info(name)
    fit = bg.GLMM(meta.formula, bg.datasets.load(name)).fit(method)
    fe = fit.fixed_effects().set_index("term")
    for term, value in ref["fixef"].items():
        assert fe.loc[term, "estimate"] == pytest.approx(value, rel=1e-4, abs=1e-7), term
        assert fe.loc[term, "std_error"] == pytest.approx(ref["se"][term], rel=1e-4), term
    vc = fit.variance_components()
    sds = vc[vc["kind"] == "sd"].set_index(["group", "term"])["estimate"]
    for key, value in ref["sd"].items():
        assert sds[key] == pytest.approx(value, rel=1e-4), key
    corr = vc[vc["kind"] == "corr"].set_index(["group", "term", "term2"])["estimate"]
    for key, value in ref["corr"].items():
        assert corr[key] == pytest.approx(value, abs=1e-4), key
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-7)
    k = len(ref["fixef"]) + len(ref["sd"]) + len(ref["corr"])
    assert fit.aic == pytest.approx(-2 * fit.loglik + 2 * k)


def test_ml_reml_refuse_non_gaussian():
    with pytest.raises(ValueError, match="Gaussian identity-link models"):
        bg.GLMM("y ~ trt + late + (1 | ID)", bg.datasets.load("bacteria"), family="bernoulli").fit("reml")


@pytest.mark.parametrize("method", ["laplace", "agq", "pql"])
def test_gaussian_glmm_methods_are_the_ml_lmm(method):
    """For a Gaussian identity-link model Laplace/AGQ are exact and PQL's working model is the model:
    all equal the ML LMM (as glmer hands gaussian models to lmer)."""
    meta = bg.datasets.info("sleepstudy")
    model = bg.GLMM(meta.formula, bg.datasets.load("sleepstudy"))
    ml, other = model.fit("ml"), model.fit(method)
    assert other.method == method
    assert other.loglik == pytest.approx(ml.loglik, rel=1e-10)
    assert other.beta == pytest.approx(ml.beta, rel=1e-10)
    assert other.dispersion == pytest.approx(ml.dispersion, rel=1e-10)


@pytest.mark.parametrize("name", ["sleepstudy", "milk", "salamander"])
@pytest.mark.parametrize("estimate,reml", [(True, True), (True, False), (False, False)])
def test_working_lmm_gradient_equals_finite_differences(name, estimate, reml):
    """The analytic θ-gradient used by ML/REML and PQL (correlated slopes, crossed factors, weights)."""
    import numpy as np
    from scipy.optimize import approx_fprime

    from bayesglmm.frequentist.laplace import ThetaMap
    from bayesglmm.frequentist.pql import working_lmm_deviance, working_lmm_objective

    meta = bg.datasets.info(name)
    design = bg.GLMM(meta.formula, bg.datasets.load(name), family=meta.family).design
    rng = np.random.default_rng(0)
    z, w = rng.normal(size=design.nobs) + design.X @ np.ones(design.X.shape[1]), rng.uniform(0.5, 2, design.nobs)
    tmap = ThetaMap(design)
    theta = tmap.theta0() * 0.7 + 0.1
    value, grad = working_lmm_objective(tmap, design.X, z, w, estimate, reml)(theta)
    numeric = approx_fprime(theta, lambda t: working_lmm_deviance(design.X, tmap.ZLambda(t), z, w, estimate,
                                                                   reml=reml)[0], 1e-7)
    assert grad == pytest.approx(numeric, rel=1e-5, abs=1e-6 * max(1.0, np.abs(numeric).max()))
