"""sample(marginalize=True) for the dispersion families (negative binomial NB2, beta-binomial,
Gamma): their compiled rows with the dispersion φ as an argument (bayesglmm.kernels), the in-graph
AGQ Ops with φ as a differentiable input, the conditional draws of the random effects, and the
marginalized posterior against the full one."""

import warnings

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import logsumexp

import bayesglmm as bg
from bayesglmm.bayes.marginalized import check_marginalizable, draw_random_effects, marginal_loglik
from bayesglmm.design import distinct_groups
from bayesglmm.frequentist.agq import agq_loglik
from bayesglmm.frequentist.laplace import laplace_deviance
from bayesglmm.frequentist.pirls import loglik_constant
from bayesglmm.results import NotApplicableError

DATA = "bayesglmm/datasets/data/"
SALAMANDER = ("count ~ spp + mined + (1 | site)", "salamander_counts.csv", "negativebinomial", None)
CBPP = ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp.csv", "betabinomial", None)
GAMMA = ("y ~ x + trt + (1 | g)", "gamma_sim.csv", "gamma", "log")


def _model(formula, data, family, link):
    from pathlib import Path

    df = pd.read_csv(Path(__file__).resolve().parents[1] / DATA / data)
    return bg.GLMM(formula, df, family=family, **({"link": link} if link else {}))


def _fit(m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.fit("laplace")


@pytest.mark.slow
def test_dispersion_rows_equal_the_families_formulas():
    """κ, κ′ and the weight of each dispersion code equal the family's loglik_kernel, score and
    Fisher weight (Working.weight); ∂κ/∂φ equals a central difference of loglik_kernel in φ; the
    split into η-terms and a per-row constant adds up to the row; φ beyond 100 (Stirling's series)
    included."""
    import numba

    from bayesglmm import kernels as K

    @numba.njit
    def rows(eta, y, n, code, phi):
        out = np.empty((eta.shape[0], 8))
        for i in range(eta.shape[0]):
            kap, s, w, d = K.dispersion_row(eta[i], y[i], n[i], code, phi)
            t, s2, w2, d2 = K.dispersion_terms(eta[i], y[i], n[i], code, phi)
            c, dc = K.dispersion_constant(y[i], n[i], code, phi)
            s3, w3 = K.score_weight(eta[i], y[i], n[i], code, phi)
            out[i] = (kap, s, w, d, t + c - kap, d2 + dc - d, s3 - s, w3 - w)
        return out

    rng = np.random.default_rng(4)
    N = 200
    for family, link in (("negativebinomial", "log"), ("betabinomial", "logit"), ("betabinomial", "probit"),
                         ("betabinomial", "cloglog"), ("gamma", "log"), ("gamma", "inverse")):
        for phi in (0.4, 3.0, 250.0):
            f = bg.families.get_family(family, link).with_dispersion(phi)
            n = rng.integers(1, 30, N).astype(float) if family == "betabinomial" else np.ones(N)
            if family == "gamma":
                eta = rng.uniform(0.2, 2.0, N) if link == "inverse" else rng.normal(0, 1, N)
                y = rng.gamma(2.0, 1.0, N)
            elif family == "betabinomial":
                eta = rng.normal(0, 1.2, N)
                y = rng.binomial(n.astype(int), 0.3).astype(float)
            else:
                eta = rng.normal(1, 1.5, N)
                y = rng.poisson(np.exp(eta) * rng.gamma(1.0, 1.0, N)).astype(float)
            trials = n if family == "betabinomial" else None
            out = rows(eta, y, n, f.kernel_code, phi)
            mu = f.link.inverse(eta)
            np.testing.assert_allclose(out[:, 0], f.loglik_kernel(y, mu, trials), rtol=1e-12, atol=1e-11)
            wk = f.working(eta, y, trials)
            np.testing.assert_allclose(out[:, 1], wk.score, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(out[:, 2], wk.weight, rtol=1e-12)
            h = 1e-5 * phi
            fd = (f.loglik_kernel(y, mu, trials, sigma=phi + h) - f.loglik_kernel(y, mu, trials, sigma=phi - h)) / (2 * h)
            np.testing.assert_allclose(out[:, 3], fd, rtol=1e-6, atol=1e-9)  # the difference: ~1e-16 · |κ| / h
            assert np.max(np.abs(out[:, 4:])) < 1e-9
    # the inverse link outside its range: no mass at such a node, no NaN
    bad = rows(np.array([-0.5, 0.0]), np.array([1.0, 1.0]), np.ones(2), K.GAMMA_INVERSE, 2.0)
    assert np.all(bad[:, 0] == -np.inf) and np.all(bad[:, 1] == 0.0) and np.all(np.isfinite(bad[:, 2:4]))


def _point(m, scale=1.2, sd_floor=0.3):
    """(β, the SDs' factor L, φ, modes) away from the Laplace estimate: SDs × ``scale`` (at least
    ``sd_floor``: cbpp's beta-binomial herd SD is near 0), φ × 1.3."""
    fit = _fit(m)
    dev, tmap = laplace_deviance(m.design, m.family)
    theta = np.maximum(scale * np.asarray(fit.theta), sd_floor)
    phi = 1.3 * float(fit.dispersion)
    u = dev.state(np.r_[theta, fit.beta, np.log(phi)]).u
    return fit.beta, tmap.factors(theta)[0], phi, u


@pytest.mark.slow
@pytest.mark.parametrize("case", [SALAMANDER, CBPP, CBPP[:3] + ("probit",), CBPP[:3] + ("cloglog",), GAMMA,
                                  ("count ~ mined + cover + (1 + cover | site)",) + SALAMANDER[1:]])
def test_op_loglik_equals_the_frequentist_agq(case):
    """The fused Op's log-likelihood (its own modes, to 1e-12) equals the frequentist AGQ's
    (agq_loglik with family.with_dispersion(φ), modes from PIRLS) at the same (β, SDs, φ), 1 and 7
    nodes a dimension, one term and two (the product rule). Measured: within 1.7e-12."""
    m = _model(*case)
    b, L, phi, u = _point(m)
    fam = m.family.with_dispersion(phi)
    beta, ph = pt.dvector("beta"), pt.dscalar("phi")
    for nagq in (1, 7):
        if L.shape[0] == 1:
            sd = pt.dscalar("sd")
            f = pytensor.function([beta, sd, ph], marginal_loglik(m.design, m.family, beta, sd, nagq, phi=ph))
            value = f(b, L[0, 0], phi)
        else:
            sd, chol = pt.dvector("sd"), pt.dmatrix("chol")
            f = pytensor.function([beta, sd, chol, ph],
                                  marginal_loglik(m.design, m.family, beta, sd, nagq, chol=chol, phi=ph))
            s = np.sqrt(np.sum(L**2, axis=1))
            value = f(b, s, L / s[:, None], phi)
        ref = agq_loglik(m.design, fam, L, b, u, nagq) - loglik_constant(m.design, fam)
        assert value == pytest.approx(ref, abs=1e-8)


def _fixed_node_loglik(m, beta, sd, phi, nagq, nodes=None):
    """A NumPy AGQ of a scalar random effect whose nodes (û, R) are given — or placed at
    (β, sd, φ) by Newton steps, Fisher weights as the Op — with the family's own loglik_kernel:
    the Op's value as a function of its inputs given the nodes. Returns (value, nodes)."""
    d = m.design
    rows, idx, counts = distinct_groups(d)
    J = len(counts)
    y = d.y[rows].astype(float)
    n = None if d.trials is None else d.trials[rows].astype(float)
    base = d.offset[rows] + d.X[rows] @ beta
    a = sd * d.random[0].Xr[rows, 0]
    fam = m.family.with_dispersion(phi)
    if nodes is None:
        u = np.zeros(J)
        for _ in range(200):
            wk = fam.working(base + a * u[idx], y, n)
            u = u + np.clip((np.bincount(idx, a * wk.score, J) - u) / (1 + np.bincount(idx, a * a * wk.weight, J)),
                            -1, 1)
        R = np.sqrt(1 + np.bincount(idx, a * a * fam.working(base + a * u[idx], y, n).weight, J))
        nodes = (u, R)
    u, R = nodes
    x, w = np.polynomial.hermite.hermgauss(nagq)
    U = u[:, None] + np.sqrt(2) * x[None] / R[:, None]
    eta = base[:, None] + a[:, None] * U[idx]
    ll = fam.loglik_kernel(y[:, None], fam.link.inverse(eta), None if n is None else n[:, None])
    S = np.zeros((J, nagq))
    np.add.at(S, idx, ll)
    F = np.log(w)[None] + x[None] ** 2 + S - 0.5 * U**2
    per = logsumexp(F, axis=1) + 0.5 * np.log(2) - 0.5 * np.log(2 * np.pi) - np.log(R)
    return float(counts @ per), nodes


@pytest.mark.slow
@pytest.mark.parametrize("case,sd,phi", [(SALAMANDER, 0.6, 1.1), (CBPP, 0.5, 8.0), (CBPP[:3] + ("cloglog",), 0.5, 8.0),
                                         (GAMMA, 0.4, 2.0)])
def test_op_gradient_in_phi_and_beta_equals_finite_differences(case, sd, phi):
    """The Op's gradient in φ, β and the SD is the exact derivative of its value with the modes and
    curvatures held fixed (central differences of a NumPy AGQ at those nodes: within 1e-8 measured
    ~1e-8), and with 41 nodes, where the value hardly depends on the nodes, also that of the Op's
    own value (its modes moving): within 1e-7 measured 6e-9."""
    m = _model(*case)
    b0 = _fit(m).beta
    beta, s_, ph = pt.dvector("beta"), pt.dscalar("sd"), pt.dscalar("phi")
    h = 1e-5
    for nagq in (11, 41):
        ll = marginal_loglik(m.design, m.family, beta, s_, nagq, phi=ph)
        fn = pytensor.function([beta, s_, ph], [ll] + pt.grad(ll, [beta, s_, ph]))
        value, gb, gs, gp = fn(b0, sd, phi)
        ref, nodes = _fixed_node_loglik(m, b0, sd, phi, nagq)
        assert value == pytest.approx(ref, abs=1e-9)  # both without the constants free of φ

        def fixed(b=b0, s=sd, p=phi):
            return _fixed_node_loglik(m, b, s, p, nagq, nodes)[0]

        fd_phi = (fixed(p=phi + h) - fixed(p=phi - h)) / (2 * h)
        fd_sd = (fixed(s=sd + h) - fixed(s=sd - h)) / (2 * h)
        fd_b = np.array([(fixed(b=b0 + h * e) - fixed(b=b0 - h * e)) / (2 * h) for e in np.eye(len(b0))])
        assert gp == pytest.approx(fd_phi, abs=1e-7, rel=1e-7)
        assert gs == pytest.approx(fd_sd, abs=1e-7, rel=1e-7)
        np.testing.assert_allclose(gb, fd_b, atol=1e-7, rtol=1e-7)
        if nagq == 41:
            own_phi = (fn(b0, sd, phi + h)[0] - fn(b0, sd, phi - h)[0]) / (2 * h)
            own_b = np.array([(fn(b0 + h * e, sd, phi)[0] - fn(b0 - h * e, sd, phi)[0]) / (2 * h)
                              for e in np.eye(len(b0))])
            assert gp == pytest.approx(own_phi, abs=1e-7, rel=1e-7)
            np.testing.assert_allclose(gb, own_b, atol=1e-7, rtol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("case,sd,phi", [(SALAMANDER, 0.8, 0.9), (CBPP, 0.6, 8.0), (GAMMA, 0.5, 2.0)])
def test_conditional_draws_with_a_dispersion_have_the_conditional_moments(case, sd, phi):
    """Given (β, SD, φ), the random effects' draws have the conditional means and SDs computed on a
    fine grid with the family's loglik_kernel: z-scores over the groups ~ N(0, 1)."""
    m = _model(*case)
    beta = _fit(m).beta
    D = 4000
    u = draw_random_effects(m.design, m.family, np.tile(beta, (D, 1)), np.full(D, sd), np.random.default_rng(1),
                            phi_draws=np.full(D, phi))
    d, fam = m.design, m.family.with_dispersion(phi)
    idx, J = d.random[0].index, d.random[0].n_levels
    grid = np.linspace(-12, 12, 6001)
    eta = (d.offset + d.X @ beta)[:, None] + sd * d.random[0].Xr[:, :1] * grid[None, :]
    logf = np.zeros((J, grid.size))
    np.add.at(logf, idx, fam.loglik_kernel(d.y[:, None], fam.link.inverse(eta),
                                           None if d.trials is None else d.trials[:, None]))
    logf -= 0.5 * grid**2
    p = np.exp(logf - logf.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    mean = p @ grid
    s = np.sqrt(np.sum(p * (grid[None, :] - mean[:, None]) ** 2, axis=1))
    z_mean = (u.mean(axis=0) - mean) / (s / np.sqrt(D))
    z_sd = (u.std(axis=0) - s) / (s / np.sqrt(2 * D))
    for z in (z_mean, z_sd):
        assert abs(z.mean()) < 4 / np.sqrt(J) and np.max(np.abs(z)) < 4.5


def test_the_frequentist_agq_still_integrates_the_dispersion_families():
    """The frequentist AGQ's compiled node loop has no φ: a dispersion family (now with a kernel
    code) keeps its NumPy path. Salamanders NB by 25 nodes: θ and the log-likelihood at glmmTMB's
    (its exact integral at glmmTMB's estimates is −826.1555311; our optimum is a hair above)."""
    m = _model(*SALAMANDER)
    fit = m.fit("agq", nagq=25)
    assert fit.dispersion == pytest.approx(0.942406, abs=2e-3)
    assert fit.loglik == pytest.approx(-826.1555311, abs=1e-3)
    assert fit.loglik >= -826.1555311 - 1e-6


def test_marginalize_refuses_the_gamma_inverse_and_identity_links():
    for link in ("inverse", "identity"):
        m = _model(*GAMMA[:3], link)
        with pytest.raises(NotApplicableError, match=f"not gamma with the {link} link"):
            check_marginalizable(m.design, m.family)
    with pytest.raises(ValueError, match="needs its theta"):
        m = _model(*SALAMANDER)
        marginal_loglik(m.design, m.family, pt.dvector("b"), pt.dscalar("s"), 5)


@pytest.mark.parametrize("case,expected", [(SALAMANDER, 7), (CBPP, 21), (GAMMA, 7)])
def test_nodes_are_chosen_for_the_dispersion_families(case, expected):
    """choose_nagq at the Laplace fit's dispersion: the fewest nodes that settle to 1e-4."""
    from bayesglmm.bayes.marginalized import nagq_settling

    q, change = nagq_settling(_model(*case))
    assert q == expected and change < 1e-4


@pytest.mark.slow
def test_marginalized_negative_binomial_posterior_equals_the_full_one():
    """Salamanders NB2 (count ~ spp + mined + (1 | site)), nutpie, 2 chains × 500 + 500: the
    posterior medians of θ and of the site SD, and the sites' effects, of the marginalized run
    within 0.3 posterior SD of the full model's; the same variables and tables."""
    m = _model(*SALAMANDER)
    kw = dict(draws=500, tune=500, chains=2, cores=2, progressbar=False, diagnose=False, nuts_sampler="nutpie")
    full = m.sample(random_seed=3, **kw)
    marg = m.sample(random_seed=4, marginalize=True, **kw)
    pf, pm_ = full.idata["posterior"], marg.idata["posterior"]
    assert pm_.attrs["marginalized_nagq"] == 7
    for name in ("theta", "1|site_sd", "dispersion_scale"):
        a, b = pf[name].values.ravel(), pm_[name].values.ravel()
        assert abs(np.median(b) - np.median(a)) < 0.3 * a.std(), name
    a, b = (p["1|site"].values.reshape(-1, 23) for p in (pf, pm_))
    assert np.max(np.abs(b.mean(0) - a.mean(0)) / a.std(0)) < 0.3
    assert np.all(np.abs(b.std(0) / a.std(0) - 1) < 0.2)
    for table in ("fixed_effects", "variance_components", "random_effects"):
        assert list(getattr(marg, table)().columns) == list(getattr(full, table)().columns)
    vc = marg.variance_components()
    assert "theta" in set(vc["term"]) and marg.diagnostics(warn=False)["divergences"] == 0


@pytest.mark.slow
def test_vector_op_gradient_in_phi_equals_finite_differences():
    """A block of two terms (the product rule's direct path, NB (1 + cover | site)): with 21² nodes
    the value hardly depends on where the nodes sit, and the Op's gradient in φ, β and the SDs
    (nodes held fixed) equals central differences of its own value: within 1e-7 measured 3.6e-9."""
    m = _model("count ~ mined + cover + (1 + cover | site)", *SALAMANDER[1:])
    b0, s0, phi0 = np.array([0.5, -1.5, 0.1]), np.array([0.7, 0.3]), 0.8
    C = np.array([[1.0, 0.0], [0.3, np.sqrt(1 - 0.09)]])
    beta, sd, chol, phi = pt.dvector("b"), pt.dvector("s"), pt.dmatrix("c"), pt.dscalar("p")
    ll = marginal_loglik(m.design, m.family, beta, sd, 21, chol=chol, phi=phi)
    f = pytensor.function([beta, sd, chol, phi], [ll] + pt.grad(ll, [beta, sd, phi]))
    _, gb, gs, gp = f(b0, s0, C, phi0)
    h = 1e-5
    assert gp == pytest.approx((f(b0, s0, C, phi0 + h)[0] - f(b0, s0, C, phi0 - h)[0]) / (2 * h), abs=1e-7)
    np.testing.assert_allclose(gb, [(f(b0 + h * e, s0, C, phi0)[0] - f(b0 - h * e, s0, C, phi0)[0]) / (2 * h)
                                    for e in np.eye(3)], atol=1e-7)
    np.testing.assert_allclose(gs, [(f(b0, s0 + h * e, C, phi0)[0] - f(b0, s0 - h * e, C, phi0)[0]) / (2 * h)
                                    for e in np.eye(2)], atol=1e-7)
