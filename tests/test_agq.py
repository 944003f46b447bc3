import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.frequentist.agq import agq_loglik
from bayesglmm.frequentist.laplace import laplace_deviance

from .reference import GLMER_AGQ25


def _model(name):
    meta = bg.datasets.info(name)
    return bg.GLMM(meta.formula, bg.datasets.load(name), family=meta.family)


@pytest.mark.parametrize("name", list(GLMER_AGQ25))
def test_agq25_equals_glmer(name):
    """Against glmer nAGQ = 25 (itself within 4e-5 of its tight-tolerance refit, shared/data/README.md;
    observed here |Δβ| ≤ 7e-6, |ΔSD| ≤ 3e-6, |Δloglik| ≤ 1.1e-6): |Δβ| ≤ 1e-4, |ΔSD| ≤ 5e-5, ≤ 2e-5."""
    ref, fit = GLMER_AGQ25[name], _model(name).fit("agq", nagq=25)
    fe = fit.fixed_effects().set_index("term")["estimate"]
    for term, value in ref["fixef"].items():
        assert abs(fe[term] - value) <= 1e-4, term
    vc = fit.variance_components().set_index(["group", "term"])["estimate"]
    for key, sd in ref["sd"].items():
        assert abs(vc[key] - sd) <= 5e-5 * max(1.0, sd), key
    assert abs(fit.loglik - ref["loglik_full"]) <= 2e-5


@pytest.mark.parametrize("name", ["cbpp", "epil"])
def test_one_node_agq_is_laplace(name):
    """The AGQ formula with one node equals the Laplace log-likelihood at any (θ, β)."""
    model = _model(name)
    devfun, tmap = laplace_deviance(model.design, model.family)
    rng = np.random.default_rng(0)
    for _ in range(3):
        params = np.concatenate([[0.3 + rng.uniform()], rng.normal(scale=0.3, size=model.design.X.shape[1])])
        state = devfun.state(params)
        L = tmap.factors(params[:1])[0]
        assert agq_loglik(model.design, model.family, L, params[1:], state.u, 1) == pytest.approx(state.loglik, abs=1e-9)


def test_agq_converges_with_random_slopes():
    """Random intercepts and slopes (product rule): the log-likelihood settles as nagq grows,
    and differs from Laplace for small binary clusters."""
    rng = np.random.default_rng(11)
    J, m = 60, 6
    b = rng.multivariate_normal([0, 0], [[4.0, 1.0], [1.0, 1.0]], size=J)
    g = np.repeat(np.arange(J), m)
    x = rng.normal(size=J * m)
    y = rng.binomial(1, 1 / (1 + np.exp(-(0.3 + b[g, 0] + (1.0 + b[g, 1]) * x))))
    model = bg.GLMM("y ~ x + (1 + x | g)", pd.DataFrame({"y": y, "x": x, "g": g}), family="bernoulli")
    devfun1, tmap = laplace_deviance(model.design, model.family)
    params = np.array([2.0, 0.5, 1.0, 0.3, 1.0])  # θ (3) then β (2)
    state = devfun1.state(params)
    L = tmap.factors(params[:3])[0]
    ll = {q: agq_loglik(model.design, model.family, L, params[3:], state.u, q) for q in (1, 3, 7, 11, 15)}
    assert ll[1] == pytest.approx(state.loglik, abs=1e-9)
    assert abs(ll[3] - ll[1]) > 0.05                      # Laplace is visibly off here
    assert abs(ll[15] - ll[11]) < 1e-3 * abs(ll[7] - ll[1])  # and AGQ has converged


def test_agq_refuses_crossed_and_bad_nagq():
    sal = _model("salamander")
    with pytest.raises(ValueError, match="single grouping factor.*use method='laplace'"):
        sal.fit("agq")
    with pytest.raises(ValueError, match="nagq must be an integer from 1 to"):
        _model("cbpp").fit("agq", nagq=0)
    with pytest.raises(ValueError, match="nagq applies to method=.agq., not .laplace."):
        _model("cbpp").fit("laplace", nagq=5)


def test_default_nodes_shrink_with_the_block_size():
    from bayesglmm.frequentist.fit import default_nagq

    cbpp = bg.datasets.load("cbpp")
    assert default_nagq(bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                                family="binomial").design) == 25
    slopes = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 + period | herd)", cbpp, family="binomial")
    assert default_nagq(slopes.design) == 5  # 4 terms: 5⁴ = 625 nodes per herd
    sleep = bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy"))
    assert default_nagq(sleep.design) == 11


def test_agq_theta_derivative_equals_central_differences():
    """The AGQ deviance's exact θ-derivative (through the adaptive nodes) against differences."""
    from bayesglmm.frequentist.agq import agq_value_and_beta_grad

    for name in ("cbpp", "ohio"):
        info = bg.datasets.info(name)
        m = bg.GLMM(info.formula, bg.datasets.load(name), family=info.family)
        dev, tmap = laplace_deviance(m.design, m.family, nagq=11)
        x = np.concatenate([[0.7], np.zeros(len(m.design.fixed_names))])
        st = dev.state(x)
        f0, _, gt = agq_value_and_beta_grad(m.design, m.family, x[0], x[1:], st.u, 11, with_theta=True)
        h = np.r_[1e-6, np.zeros(len(x) - 1)]
        assert f0 == pytest.approx(dev(x), rel=1e-12)
        assert gt == pytest.approx((dev(x + h) - dev(x - h)) / 2e-6, rel=1e-5, abs=1e-5)


def _slopes_data(seed=3, J=40, m=6):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), m)
    x1, x2 = rng.normal(size=J * m), rng.normal(size=J * m)
    b = rng.normal(size=(J, 3)) * [0.8, 0.4, 0.3]
    eta = -0.3 + 0.5 * x1 + b[g, 0] + b[g, 1] * x1 + b[g, 2] * x2
    df = pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x1": x1, "x2": x2, "g": g,
                       "t": rng.uniform(1, 3, J * m)})
    df["c"] = rng.poisson(df.t * np.exp(eta))
    return df


@pytest.mark.parametrize("formula, family, link, x, nagq", [
    ("y ~ x1 + x2 + (1 + x1 | g)", "bernoulli", "logit", [0.9, 0.2, 0.4, -0.3, 0.5, 0.1], 11),
    ("y ~ x1 + x2 + (1 + x1 | g)", "bernoulli", "probit", [0.9, 0.2, 0.4, -0.3, 0.5, 0.1], 7),
    ("c ~ x1 + offset(np.log(t)) + (1 + x1 + x2 | g)", "poisson", "log", [0.8, 0.1, 0.4, 0.05, 0.1, 0.3, -0.3, 0.5], 5),
    ("y ~ x1 + (1 + x1 | g)", "bernoulli", "cloglog", [0.0, 0.3, 0.6, -0.3, 0.5], 7),  # θ₁₁ on its bound
])
def test_vector_agq_gradient_equals_central_differences(formula, family, link, x, nagq):
    """The vector AGQ deviance's exact gradient through the product rule's moving nodes, against
    central differences (h = 1e-5, their own error ~1e-8): every coordinate within 1e-6 relative,
    off a canonical link too (observed weights in the modes' derivative) and with a θ at 0."""
    m = bg.GLMM(formula, _slopes_data(), family=family, link=link)
    dev, tmap = laplace_deviance(m.design, m.family, nagq=nagq)
    x = np.asarray(x, dtype=float)
    f0, g = dev.value_and_grad(x)
    assert f0 == pytest.approx(dev(x), rel=1e-13)
    h = 1e-5
    num = np.array([(dev(x + h * e) - dev(x - h * e)) / (2 * h) for e in np.eye(len(x))])
    assert np.abs(g - num).max() <= 1e-6 * max(1.0, np.abs(num).max())


def test_vector_agq_gradient_with_one_term_is_the_scalar_one():
    from bayesglmm.frequentist.agq import agq_value_and_beta_grad, agq_value_and_grad

    m = _model("ohio")
    dev, tmap = laplace_deviance(m.design, m.family, nagq=11)
    x = np.array([1.7, -3.0, -0.2, 0.4])
    st = dev.state(x)
    f1, g1t, g1b = agq_value_and_grad(m.design, m.family, tmap.factors(x[:1])[0], [(0, 0)], x[1:], st.u, 11)
    f0, g0b, g0t = agq_value_and_beta_grad(m.design, m.family, x[0], x[1:], st.u, 11, with_theta=True)
    assert f1 == pytest.approx(f0, abs=1e-10)
    np.testing.assert_allclose(np.r_[g1t, g1b], np.r_[g0t, g0b], rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("formula", ["resp ~ age + smoke + (1 | id)", "resp ~ age + smoke + (1 + age | id)"])
def test_agq_on_distinct_group_patterns_equals_every_group(formula):
    """AGQ integrates each distinct group pattern once and counts it for its groups (ohio: 537
    children, 32 patterns): value and exact gradient equal those over every group, at a point
    off the optimum, for one term (its own gradient) and for a block (the product rule)."""
    from bayesglmm.frequentist.agq import agq_value_and_beta_grad, agq_value_and_grad, group_data

    m = bg.GLMM(formula, bg.datasets.load("ohio"), family="bernoulli")
    dev, tmap = laplace_deviance(m.design, m.family, nagq=7)
    nt = tmap.n_theta
    x = np.r_[[1.6, 0.2, 0.3][:nt], -3.0, -0.2, 0.4]
    st = dev.state(x)
    short, full = group_data(m.design), group_data(m.design, distinct=False)
    assert short.n_levels == 32 and short.counts.sum() == full.n_levels == 537
    L = tmap.factors(x[:nt])[0]
    assert agq_loglik(m.design, m.family, L, x[nt:], st.u, 7, short) == pytest.approx(
        agq_loglik(m.design, m.family, L, x[nt:], st.u, 7, full), abs=1e-9)
    if nt == 1:
        a = agq_value_and_beta_grad(m.design, m.family, x[0], x[1:], st.u, 7, with_theta=True, data=short)
        b = agq_value_and_beta_grad(m.design, m.family, x[0], x[1:], st.u, 7, with_theta=True, data=full)
    else:
        entries = [(r, c) for c, _, r in tmap.theta_positions()]
        a = agq_value_and_grad(m.design, m.family, L, entries, x[nt:], st.u, 7, short)
        b = agq_value_and_grad(m.design, m.family, L, entries, x[nt:], st.u, 7, full)
    assert a[0] == pytest.approx(b[0], abs=1e-8)
    for ga, gb in zip(a[1:], b[1:]):
        np.testing.assert_allclose(ga, gb, rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("formula, family, link", [
    ("y ~ x1 + x2 + (1 + x1 | g)", "bernoulli", "logit"),
    ("y ~ x1 + x2 + (1 + x1 | g)", "bernoulli", "probit"),
    ("y ~ x1 + (1 + x1 | g)", "bernoulli", "cloglog"),
    ("cbind(c3, 3 - c3) ~ x1 + (1 + x1 | g)", "binomial", "logit"),
    ("c ~ x1 + offset(np.log(t)) + (1 + x1 + x2 | g)", "poisson", "log"),
    ("c4 ~ x1 + (1 + x1 | g)", "poisson", "identity"),
])
def test_compiled_node_loop_equals_numpy(formula, family, link):
    """The compiled node loop (agq_kernels) against the NumPy one, every (family, link) code:
    the log-likelihood to 1e-10 and the gradient to 1e-9 relative, at a point off the optimum."""
    from bayesglmm.frequentist.agq import agq_value_and_grad, group_data

    df = _slopes_data()
    df["c3"] = np.minimum(df["c"], 3)
    df["c4"] = df["c"] + 4  # identity link: means kept positive at the point below
    m = bg.GLMM(formula, df, family=family, link=link)
    dev, tmap = laplace_deviance(m.design, m.family, nagq=5)
    nt, p = tmap.n_theta, m.design.X.shape[1]
    x = np.r_[np.linspace(0.6, 0.2, nt), (5.0 if link == "identity" else -0.3), np.full(p - 1, 0.1)]
    if link == "identity":
        x[:nt] *= 0.5
    st = dev.state(x)
    data, L = group_data(m.design), tmap.factors(x[:nt])[0]
    assert family == "poisson" or m.family.kernel_code in (0, 1, 2)
    entries = [(r, c) for c, _, r in tmap.theta_positions()]
    fast = agq_value_and_grad(m.design, m.family, L, entries, x[nt:], st.u, 5, data, compiled=True)
    slow = agq_value_and_grad(m.design, m.family, L, entries, x[nt:], st.u, 5, data, compiled=False)
    assert np.isfinite(fast[0]) and fast[0] == pytest.approx(slow[0], abs=1e-10, rel=1e-13)
    for gf, gs in zip(fast[1:], slow[1:]):
        np.testing.assert_allclose(gf, gs, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(gs).max()))
    assert agq_loglik(m.design, m.family, L, x[nt:], st.u, 5, data) == pytest.approx(
        agq_loglik(m.design, m.family, L, x[nt:], st.u, 5, data, compiled=False), abs=1e-10)


def test_compiled_node_loop_recomputes_scores_beyond_its_memory_bound():
    """Past ``max_stored`` scores a pattern, the gradient's pass computes them again: same sums."""
    from bayesglmm.frequentist.agq import _compiled_nodes, _level_outer, _modes, group_data

    m = bg.GLMM("y ~ x1 + x2 + (1 + x1 | g)", _slopes_data(), family="bernoulli")
    dev, tmap = laplace_deviance(m.design, m.family, nagq=7)
    x = np.array([0.9, 0.2, 0.4, -0.3, 0.5, 0.1])
    st = dev.state(x)
    data = group_data(m.design)
    a = data.Xr @ tmap.factors(x[:3])[0]
    U = _modes(data, st.u)
    eta = data.offset + data.X @ x[3:] + np.einsum("ik,ik->i", a, U[data.index])
    R = np.linalg.cholesky(_level_outer(data, m.family.working(eta, data.y, data.trials).weight, a))
    kept = _compiled_nodes(data, m.family, a, eta, U, R, 7, True)
    again = _compiled_nodes(data, m.family, a, eta, U, R, 7, True, max_stored=0)
    for k_, g_ in zip(kept, again):
        np.testing.assert_allclose(k_, g_, rtol=1e-13, atol=1e-13)
