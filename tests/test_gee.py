import pytest

import bayesglmm as bg

from .reference import GEE_EXCH


def _model(name):
    meta = bg.datasets.info(name)
    return bg.GLMM(meta.formula, bg.datasets.load(name), family=meta.family)


@pytest.mark.parametrize("name", list(GEE_EXCH))
def test_gee_equals_geepack(name):
    """β and robust SEs within 1e-3 of geeglm (exchangeable)."""
    ref, fit = GEE_EXCH[name], _model(name).fit("gee")
    fe = fit.fixed_effects().set_index("term")
    for term, value in ref["coef"].items():
        assert abs(fe.loc[term, "estimate"] - value) <= 1e-3, term
        assert abs(fe.loc[term, "std_error"] - ref["robust_se"][term]) <= 1e-3, term
    # statsmodels and geepack use slightly different moment estimators of alpha
    assert fit.alpha == pytest.approx(ref["alpha"], abs=2e-3)
    assert fit.population_averaged and fit.variance_components().empty and fit.random_effects().empty


def test_gee_marginal_effects_are_attenuated():
    """Population-averaged logit coefficients are closer to zero than the subject-specific ones."""
    model = _model("ohio")
    gee = model.fit("gee").fixed_effects().set_index("term")["estimate"]
    ml = model.fit("laplace").fixed_effects().set_index("term")["estimate"]
    assert abs(gee["smoke"]) < abs(ml["smoke"]) and abs(gee["(Intercept)"]) < abs(ml["(Intercept)"])


def test_gee_errors():
    with pytest.raises(ValueError, match="single grouping factor to cluster on"):
        _model("salamander").fit("gee")
    with pytest.raises(ValueError, match="0/1 binomial responses only"):
        _model("cbpp").fit("gee")
    with pytest.raises(ValueError, match="correlation must be one of"):
        _model("ohio").fit("gee", correlation="toeplitz")
