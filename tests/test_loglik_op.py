"""The fused log-likelihood Op (bayes/loglik_op.py) against PyMC's own distributions."""

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

import bayesglmm as bg
from bayesglmm.bayes.loglik_op import PRODUCT_ROWS, GLMLoglik, glm_loglik, glm_loglik_kernel, loglik_constant
from bayesglmm.bayes.model import build_pymc_model, fused_likelihood
from bayesglmm.families import get_family

from .test_bayes_model import CASES


def _rows(code, m, trials):
    """η over a wide range (|η| to 40 and exactly 0), a response, trials (ones or varying)."""
    rng = np.random.default_rng(7)
    eta = np.concatenate([rng.normal(0, 3, m - 5), [0.0, 40.0, -40.0, 25.0, -25.0]])
    if code == 3:
        eta = np.clip(eta, -20, 5)
        y = rng.poisson(np.exp(eta)).astype(float)
        n = np.ones(m)
    else:
        n = rng.integers(1, 9, m).astype(float) if trials else np.ones(m)
        y = rng.binomial(n.astype(int), 1 / (1 + np.exp(-eta))).astype(float)
    return eta, y, n


def _pymc_reference(code, eta, y, n):
    """PyMC's log-likelihood of the rows and its gradient in η."""
    e = pt.dvector("eta")
    if code == 3:
        dist = pm.Poisson.dist(mu=pt.exp(e))
    elif np.all(n == 1):
        dist = pm.Bernoulli.dist(logit_p=e)
    else:
        dist = pm.Binomial.dist(n=n.astype(np.int64), logit_p=e)
    logp = pm.logp(dist, y.astype(np.int64)).sum()
    fn = pytensor.function([e], [logp, pytensor.grad(logp, e)])
    return fn(eta)


@pytest.mark.slow
@pytest.mark.parametrize("code,trials", [(0, False), (0, True), (3, False)], ids=["bernoulli", "binomial", "poisson"])
def test_kernel_equals_pymc_distributions(code, trials):
    """Value (constant included) and gradient as PyMC's Bernoulli/Binomial/Poisson, over more rows
    than one running product holds (the Bernoulli terms' logarithm is taken every PRODUCT_ROWS rows)."""
    m = 3 * PRODUCT_ROWS + 17
    eta, y, n = _rows(code, m, trials)
    family = get_family("poisson" if code == 3 else ("binomial" if trials else "bernoulli"))
    const = loglik_constant(family, y, n if trials else None)
    value, grad = glm_loglik_kernel(eta, y, n, const, code)
    ref_value, ref_grad = _pymc_reference(code, eta, y, n)
    assert value == pytest.approx(ref_value, rel=1e-12, abs=1e-10)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-12, atol=1e-13)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_op_in_a_graph_and_its_gradient(mode):
    """The Op compiled by the Numba backend (its funcify) and by ``perform``; PyTensor's gradient
    through it is outputs[1], checked against central differences."""
    eta, y, n = _rows(0, 300, True)
    e = pt.dvector("eta")
    value = glm_loglik(0, 0.5 * e, y, n, 1.5)
    fn = pytensor.function([e], [value, pytensor.grad(value, e)], mode=mode)
    v, g = fn(eta)
    ref, _ = glm_loglik_kernel(0.5 * eta, y, n, 1.5, 0)
    assert float(v) == pytest.approx(ref, rel=1e-14)
    h = 1e-6
    for i in (0, 150, 299):
        d = np.zeros_like(eta)
        d[i] = h
        numeric = (fn(eta + d)[0] - fn(eta - d)[0]) / (2 * h)
        assert g[i] == pytest.approx(numeric, rel=1e-6, abs=1e-7)


def test_op_refuses_other_codes():
    with pytest.raises(ValueError, match="code must be one of"):
        GLMLoglik(1)


@pytest.mark.slow
@pytest.mark.parametrize("formula,family,link", CASES)
@pytest.mark.parametrize("as_data", [False, True], ids=["constants", "shared"])
def test_fused_graph_has_the_observed_graphs_log_density(small_df, formula, family, link, as_data):
    """``likelihood="fused"``: the same log density and gradient as the graph with the observed
    variable, at random points, for every family and link (those without the Op keep ``y``)."""
    m = bg.GLMM(formula, small_df, family=family, link=link)
    observed = build_pymc_model(m.design, m.family, m.priors, as_data=as_data)
    fused = build_pymc_model(m.design, m.family, m.priors, as_data=as_data, likelihood="fused")
    assert ("y_loglik" in fused.named_vars) == fused_likelihood(m.family)
    assert ("y" in fused.named_vars) != fused_likelihood(m.family)
    rng = np.random.default_rng(3)
    # one function each, value and gradient, compiled quickly (the Op's perform runs its kernel)
    ref_fn, fused_fn = (pmm.compile_fn([pmm.logp(), pmm.dlogp()], inputs=pmm.value_vars, mode="FAST_COMPILE",
                                       point_fn=False)
                        for pmm in (observed, fused))
    for _ in range(3):
        point = {k: v + 0.5 * rng.normal(size=np.shape(v)) for k, v in observed.initial_point().items()}
        inputs = [point[v.name] for v in observed.value_vars]
        ref_logp, ref_grad = ref_fn(*inputs)
        logp, grad = fused_fn(*[point[v.name] for v in fused.value_vars])
        assert logp == pytest.approx(ref_logp, rel=1e-12, abs=1e-9)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-10)


def test_fused_likelihood_is_chosen_by_the_family():
    assert fused_likelihood(get_family("bernoulli"))
    assert fused_likelihood(get_family("binomial"))
    assert fused_likelihood(get_family("poisson"))
    assert not fused_likelihood(get_family("bernoulli", link="probit"))
    assert not fused_likelihood(get_family("poisson", link="identity"))
    assert not fused_likelihood(get_family("gaussian"))


def test_build_refuses_an_unknown_likelihood(small_df):
    m = bg.GLMM("y ~ x + (1 | g)", small_df, family="bernoulli")
    with pytest.raises(ValueError, match="likelihood must be 'observed' or 'fused'"):
        build_pymc_model(m.design, m.family, m.priors, likelihood="potential")


@pytest.mark.slow
def test_nutpie_posterior_keeps_the_observed_data_and_predictive(small_df):
    """nutpie samples the fused graph; the posterior still has ``observed_data`` ``y`` and
    posterior predictive draws (from the model with the observed variable)."""
    pytest.importorskip("nutpie")
    data = small_df.copy()
    m = bg.GLMM("count ~ x + offset(np.log(t)) + (1 | g)", data, family="poisson")
    post = m.sample(draws=100, tune=100, chains=1, random_seed=2, progressbar=False, diagnose=False,
                    nuts_sampler="nutpie")
    np.testing.assert_array_equal(post.idata["observed_data"]["y"].values, small_df["count"].to_numpy())
    yrep = post.posterior_predictive(random_seed=1)
    assert yrep.shape == (1, 100, len(small_df))
    assert np.all(yrep >= 0) and np.all(yrep == np.round(yrep))
    pd.testing.assert_frame_equal(data, small_df)
