"""model.deviance(method): the objective each likelihood method minimises, as a public function."""

import numpy as np
import pytest

import bayesglmm as bg

from .reference import GLMMTMB


def _model(name):
    info = bg.datasets.info(name)
    return bg.GLMM(info.formula, bg.datasets.load(name), family=info.family)


@pytest.mark.parametrize("method,nagq", [("laplace", None), ("agq", 25)])
def test_glmm_deviance_at_the_fit_is_minus_twice_its_loglik(method, nagq):
    model = _model("cbpp")
    dev = model.deviance(method, nagq=nagq)
    fit = model.fit(method, nagq=nagq)
    assert dev.names == ["theta[herd.(Intercept)]", "(Intercept)", "period[2]", "period[3]", "period[4]"]
    x = dev.params(fit)
    assert dev(x) == pytest.approx(-2 * fit.loglik, abs=1e-8)
    # at the optimum: the gradient vanishes and the slice through θ is lowest at the estimate
    f, g = dev.value_and_grad(x)
    assert f == pytest.approx(dev(x), abs=1e-10) and np.max(np.abs(g)) < 1e-3
    sl = dev.slice("theta[herd.(Intercept)]", x[0] + np.linspace(-0.2, 0.2, 9), at=fit)
    assert sl["deviance"].idxmin() == 4 and list(sl.columns) == ["value", "deviance"]


@pytest.mark.parametrize("name", ["cbpp", "bacteria", "epil", "ohio"])
def test_laplace_deviance_at_glmmtmbs_estimates_is_glmmtmbs_loglik(name):
    """Evaluated at glmmTMB's estimates (the R reference JSON), the Laplace deviance is −2 × its
    loglik: the function itself equals R's, not only its optimum (observed |Δ| ≤ 3e-9)."""
    model = _model(name)
    ref = GLMMTMB[name]
    dev = model.deviance("laplace")
    theta = ref["sd"][(model.design.random[0].group, "(Intercept)")]
    beta = [ref["fixef"][term] for term in model.design.fixed_names]
    assert dev(np.r_[theta, beta]) == pytest.approx(-2 * ref["loglik"], abs=1e-7)


@pytest.mark.parametrize("method", ["ml", "reml"])
def test_lmm_deviance_is_lmers_profiled_devfun(method):
    model = bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy"))
    dev = model.deviance(method)
    fit = model.fit(method)
    assert dev.names == ["theta[Subject.(Intercept)]", "theta[Subject.Days.(Intercept)]", "theta[Subject.Days]"]
    x = dev.params(fit)
    assert dev(x) == pytest.approx(-2 * fit.loglik, abs=1e-8)
    if method == "reml":
        assert dev(x) == pytest.approx(1743.6, abs=0.05)  # lmer's REML criterion (print(fit) shows it too)
    assert np.max(np.abs(dev.value_and_grad(x)[1])) < 1e-3
    y, eps = x * 1.1, 1e-6  # away from the optimum: the analytic gradient against differences
    num = [(dev(y + eps * e) - dev(y - eps * e)) / (2 * eps) for e in np.eye(3)]
    np.testing.assert_allclose(dev.value_and_grad(y)[1], num, rtol=1e-5, atol=1e-5)


def test_deviance_errors():
    model = _model("cbpp")
    with pytest.raises(ValueError, match="PQL maximises no single objective"):
        model.deviance("pql")
    with pytest.raises(ValueError, match="method must be"):
        model.deviance("gee")
    with pytest.raises(ValueError, match="nagq applies to method='agq'"):
        model.deviance("laplace", nagq=5)
    dev = model.deviance("laplace")
    with pytest.raises(ValueError, match="params must have 5 entries"):
        dev([1.0, 2.0])
    with pytest.raises(ValueError, match="unknown coordinate 'sigma'"):
        dev.slice("sigma", [1.0])
    with pytest.raises(ValueError, match="must be ≥ 0"):
        dev.slice("theta[herd.(Intercept)]", [-1.0])
    with pytest.raises(ValueError, match="the fit is by 'pql'"):
        dev.params(model.fit("pql"))
    with pytest.raises(ValueError, match="use method='ml' or 'reml'"):
        bg.GLMM("Reaction ~ Days + (1 | Subject)", bg.datasets.load("sleepstudy")).deviance("laplace")
