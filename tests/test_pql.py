import numpy as np
import pytest

import bayesglmm as bg
from bayesglmm.frequentist.fit import PQLFit
from bayesglmm.frequentist.laplace import ThetaMap
from bayesglmm.frequentist.working_lmm import working_lmm_deviance
from scipy import optimize

from .reference import GLMMPQL


def _model(name):
    meta = bg.datasets.info(name)
    return bg.GLMM(meta.formula, bg.datasets.load(name), family=meta.family)


@pytest.mark.parametrize("name,key", list(GLMMPQL))
def test_pql_equals_glmmpql(name, key):
    """About 10× the agreement reached (observed: |Δβ| ≤ 2.7e-6, SEs ≤ 2.1e-6 relative, |ΔSD| ≤ 5.4e-6, ohio)."""
    ref = GLMMPQL[(name, key)]
    fit = _model(name).fit("pql", dispersion="fixed" if key == "glmmpql_sigma1" else "estimate")
    fe = fit.fixed_effects().set_index("term")
    for term, value in ref["fixef"].items():
        assert abs(fe.loc[term, "estimate"] - value) <= 3e-5, term
        assert fe.loc[term, "std_error"] == pytest.approx(ref["se"][term], rel=3e-5), term
    vc = fit.variance_components()
    assert abs(vc["estimate"].iloc[0] - ref["sd"]) <= 6e-5
    if ref["residual"] is None:
        assert len(vc) == 1 and fit.dispersion is None
    else:
        assert vc["group"].iloc[-1] == "Residual" and abs(fit.dispersion - ref["residual"]) <= 1e-2
    assert not any(hasattr(fit, a) for a in ("loglik", "aic", "bic"))  # PQL has no likelihood
    assert fit.converged


def test_pql_shrinks_binary_variance_relative_to_ml():
    """The textbook warning: for binary data with small clusters PQL underestimates the SD."""
    model = _model("bacteria")
    pql = model.fit("pql")
    assert pql.variance_components()["estimate"].iloc[0] < \
        0.8 * model.fit("laplace").variance_components()["estimate"].iloc[0]
    assert isinstance(pql, PQLFit) and not hasattr(pql, "loglik") and "no likelihood (PQL)" in repr(pql)


@pytest.mark.parametrize("name", ["sleepstudy", "milk"])
def test_working_lmm_reml_equals_lmer(name):
    """The inner LMM with unit weights and REML reproduces lmer's REML fit.
    lmer(Reaction ~ Days + (Days | Subject), sleepstudy); lmer(protein ~ Diet + Time + (1 | Cow), Milk)."""
    ref = {"sleepstudy": ([251.4051048485, 10.4672859596], [24.740657995, 5.9221376589], 25.5917957217),
           "milk": ([3.5826631486, -0.096304694465, -0.20432542403, -0.0061889188388], [0.16732145274],
                    0.27347860294)}[name]
    meta = bg.datasets.info(name)
    d = bg.GLMM(meta.formula, bg.datasets.load(name)).design
    tmap, w = ThetaMap(d), np.ones(d.nobs)
    res = optimize.minimize(lambda th: working_lmm_deviance(d.X, tmap.ZLambda(th), d.y, w, True)[0],
                            tmap.theta0(), method="L-BFGS-B",
                            bounds=[(lo if np.isfinite(lo) else None, None) for lo in tmap.lower])
    _, beta, _, sigma2, _ = working_lmm_deviance(d.X, tmap.ZLambda(res.x), d.y, w, True)
    L = tmap.factors(res.x)[0] * np.sqrt(sigma2)
    np.testing.assert_allclose(beta, ref[0], rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(L @ L.T)), ref[1], rtol=1e-4)
    assert np.sqrt(sigma2) == pytest.approx(ref[2], rel=1e-4)


def test_pql_argument_errors():
    with pytest.raises(ValueError, match="dispersion must be 'fixed' or 'estimate'"):
        _model("cbpp").fit("pql", dispersion="free")
    with pytest.raises(ValueError, match="dispersion applies to method='pql'"):
        _model("cbpp").fit("laplace", dispersion="estimate")
