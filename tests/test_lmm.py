import numpy as np
import pandas as pd
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
    from bayesglmm.frequentist.working_lmm import working_lmm_deviance, working_lmm_objective

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




def _balanced_loglik(params, Y):
    """The ML log-likelihood of (1 | Subject) + (0 + Days | Subject) written directly: every
    subject's covariance is V = σ²I + σ_b²11ᵀ + σ_s²ddᵀ (an independent implementation)."""
    b0, b1, sigma, sb, ss = params
    K, m = Y.shape
    d = np.arange(m, dtype=float)
    V = sigma ** 2 * np.eye(m) + sb ** 2 * np.ones((m, m)) + ss ** 2 * np.outer(d, d)
    R = Y - (b0 + b1 * d)
    return -0.5 * (K * np.linalg.slogdet(V)[1] + np.einsum("ij,jk,ik->", R, np.linalg.inv(V), R)
                   + K * m * np.log(2 * np.pi))


@pytest.mark.parametrize("seed", [4, 6])
def test_ml_leaves_a_false_boundary(seed):
    """Data simulated without a random slope whose likelihood still peaks at a positive slope SD
    (seeds found by search): the fit must not stop at SD = 0, where the θ-derivative is 0 by symmetry.
    Checked against the directly written likelihood: it equals ours at our estimates, and no point
    of its profile in σ_s (the other parameters maximised, σ_s fixed: no boundary) is higher."""
    from scipy import optimize

    # the data of the seed-th draw of a stream seeded by 1 (as the search that found them)
    rng = np.random.default_rng(1)
    for _ in range(seed - 1):
        rng.normal(0, 30, 150), rng.normal(0, 30, (150, 10))
    Y = 250 + 10 * np.arange(10) + rng.normal(0, 30, 150)[:, None] + rng.normal(0, 30, (150, 10))
    data = pd.DataFrame({"Subject": np.repeat(np.arange(150), 10).astype(str),
                         "Days": np.tile(np.arange(10, dtype=float), 150), "Reaction": Y.ravel()})
    fit = bg.GLMM("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", data).fit("ml")
    vc = fit.variance_components().set_index("group")
    sds = vc["estimate"].to_numpy()  # Subject intercept, Subject slope, residual
    ours = (fit.beta[0], fit.beta[1], sds[2], sds[0], sds[1])
    assert _balanced_loglik(ours, Y) == pytest.approx(fit.loglik, abs=1e-7)
    assert sds[1] > 0.5
    for ss in np.linspace(0.0, 2.5, 11):
        res = optimize.minimize(lambda p: -_balanced_loglik((p[0], p[1], np.exp(p[2]), np.exp(p[3]), ss), Y),
                                [fit.beta[0], fit.beta[1], np.log(30), np.log(30)], method="Nelder-Mead",
                                options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 20000})
        assert -res.fun <= fit.loglik + 1e-6, (ss, -res.fun, fit.loglik)


def test_a_gaussian_glmm_fit_is_titled_as_the_exact_lmm_it_is():
    """glmer hands gaussian models to lmer; a Gaussian fit by 'agq' has no quadrature to report."""
    import bayesglmm as bg

    model = bg.GLMM("Reaction ~ Days + (1 | Subject)", bg.datasets.load("sleepstudy"))
    for method, opts in (("agq", {"nagq": 25}), ("laplace", {})):
        title = str(model.fit(method, **opts)).splitlines()[0]
        assert title.startswith("Linear mixed model fit by maximum likelihood") and "nAGQ" not in title
