import numpy as np
import pytest

import bayesglmm as bg

CASES = [
    ("y ~ x + c + (1 + x | g)", "bernoulli", "logit"),
    ("y ~ x + (1 | g) + (1 | h)", "bernoulli", "probit"),
    ("y ~ x + (1 + x || g)", "bernoulli", "cloglog"),
    ("cbind(succ, size - succ) ~ x + (1 | g/h)", "binomial", "logit"),
    ("p(succ, size) ~ x + (1 | g)", "binomial", "probit"),
    ("count ~ x + offset(np.log(t)) + (1 + x | g)", "poisson", "log"),
    ("z ~ x + (1 | g)", "gaussian", "identity"),
    ("z ~ x + (1 | g)", "gaussian", "log"),
]


@pytest.mark.slow
@pytest.mark.parametrize("formula,family,link", CASES)
def test_pymc_loglik_equals_numpy_family_loglik(small_df, formula, family, link):
    """The invariant: the PyMC model's log-likelihood at a point equals the numpy family's."""
    m = bg.GLMM(formula, small_df, family=family, link=link)
    pmm = m.pymc_model()
    rng = np.random.default_rng(1)
    point = {k: v + 0.3 * rng.normal(size=np.shape(v)) for k, v in pmm.initial_point().items()}
    outs = [pmm.logp(vars=[pmm["y"]], sum=True), pmm["beta"]] + [pmm[b.label] for b in m.design.random]
    if m.family.has_scale:
        outs.append(pmm["sigma"])
    fn = pmm.compile_fn(pmm.replace_rvs_by_values(outs), inputs=pmm.value_vars, point_fn=False)
    res = fn(*[point[v.name] for v in pmm.value_vars])
    logp, beta, effects = res[0], res[1], res[2:2 + len(m.design.random)]
    sigma = float(res[-1]) if m.family.has_scale else None
    assert np.isfinite(logp)
    assert logp == pytest.approx(m.loglik(beta, effects, sigma), rel=1e-9, abs=1e-8)


def test_coords_and_variable_names():
    m = bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy"))
    pmm = m.pymc_model()
    assert list(pmm.coords["fixed"]) == ["(Intercept)", "Days"]
    assert len(pmm.coords["Subject_level"]) == 18
    assert list(pmm.coords["1+Days|Subject_term"]) == ["(Intercept)", "Days"]
    names = {v.name for v in pmm.free_RVs}
    assert names == {"beta", "1+Days|Subject_sd", "1+Days|Subject_z", "1+Days|Subject_corr_chol", "sigma"}
    assert pmm is m.pymc_model()  # built once
