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
