"""sample(marginalize=True) for linear mixed models: the random effects integrated out exactly
(no quadrature), then drawn from their Gaussian conditionals."""

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

import bayesglmm as bg
from bayesglmm.bayes.marginalized import (build_marginal_model, draw_gaussian_effects, gaussian_marginal_loglik,
                                          gaussian_statistics)

from .reference import LMER


def _model(name):
    info = bg.datasets.info(name)
    return bg.GLMM(info.formula, bg.datasets.load(name), family=info.family)


def _loglik_function(design):
    beta, lam, sigma = pt.dvector("beta"), pt.dmatrix("lam"), pt.dscalar("sigma")
    ll = gaussian_marginal_loglik(gaussian_statistics(design), beta if design.X.shape[1] else None, lam, sigma)
    return pytensor.function([beta, lam, sigma], [ll, *pt.grad(ll, [beta, lam, sigma])], on_unused_input="ignore")


def _brute_force(design, beta, lam, sigma):
    """Σ_j log N(y_j; offset_j + X_j β, σ² I + Z_j Λ Λᵀ Z_jᵀ), by dense matrices."""
    block = design.random[0]
    total = 0.0
    for j in range(block.n_levels):
        rows = block.index == j
        Z = block.Xr[rows]
        V = sigma**2 * np.eye(rows.sum()) + Z @ lam @ lam.T @ Z.T
        total += stats.multivariate_normal(design.offset[rows] + design.X[rows] @ beta, V).logpdf(design.y[rows])
    return total


def _lmer_point(name):
    """lmer's ML estimates (β, Λ = diag(sd) L, σ) and log-likelihood."""
    ref, m = LMER[(name, "ml")], _model(name)
    block = m.design.random[0]
    beta = np.array([ref["fixef"][t] for t in m.design.fixed_names])
    sd = np.array([ref["sd"][(block.group, t)] for t in block.terms])
    R = np.eye(block.n_terms)
    for (_, a, b), r in ref["corr"].items():
        i, j = block.terms.index(a), block.terms.index(b)
        R[i, j] = R[j, i] = r
    return m, beta, sd[:, None] * np.linalg.cholesky(R), ref["sd"][("Residual", "Residual")], ref["loglik"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sleepstudy", "milk"])
def test_marginal_loglik_equals_lmer_at_its_estimates(name):
    """The graph's exact marginal log-likelihood at lmer's ML estimates is lmer's logLik."""
    # lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy, REML = FALSE): logLik -875.9696722445
    # lmer(protein ~ Diet + Time + (1 | Cow), data = Milk, REML = FALSE): logLik -240.0521071106
    m, beta, lam, sigma, loglik = _lmer_point(name)
    assert _loglik_function(m.design)(beta, lam, sigma)[0] == pytest.approx(loglik, abs=1e-6)


@pytest.mark.slow
def test_uncorrelated_blocks_integrate_exactly():
    """(Days || Subject), two blocks of one factor merged: the exact marginal log-likelihood at the
    ML fit's estimates (the LMM engine, on the two blocks) is its log-likelihood."""
    from bayesglmm.bayes.marginalized import merged_design

    m = bg.GLMM("Reaction ~ Days + (Days || Subject)", bg.datasets.load("sleepstudy"))
    fit = m.fit("ml")
    vc = fit.variance_components().set_index(["group", "term"])["estimate"]
    lam = np.diag([vc[("Subject", "(Intercept)")], vc[("Subject", "Days")]])
    merged = merged_design(m.design)
    assert _loglik_function(merged)(fit.beta, lam, vc[("Residual", "Residual")])[0] == pytest.approx(fit.loglik,
                                                                                                    abs=1e-6)


def _three_terms(offset=True, seed=3):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), rng.integers(2, 9, size=12))
    n = len(g)
    df = pd.DataFrame({"x": rng.normal(size=n), "w": rng.normal(size=n), "o": rng.normal(size=n) if offset else 0.0,
                       "g": [f"g{i}" for i in g]})
    df["y"] = 1e4 + df.x + 0.5 * df.w + df.o + rng.normal(size=n)  # a large mean: r = r0 - X(β - β0) keeps the digits
    return bg.GLMM("y ~ x + w + offset(o) + (1 + x + w | g)", df, family="gaussian")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["sleepstudy", "milk", "three-terms"])
def test_marginal_loglik_and_gradient_equal_the_dense_normal(case):
    """At random points (not the estimate): value against dense multivariate normals to 1e-9,
    gradient against central differences."""
    m = _three_terms() if case == "three-terms" else _model(case)
    design, rng = m.design, np.random.default_rng(5)
    k, p = design.random[0].n_terms, design.X.shape[1]
    f = _loglik_function(design)
    beta0 = np.linalg.lstsq(design.X, design.y - design.offset, rcond=None)[0]
    scale = np.std(design.y)
    for _ in range(3):
        beta = beta0 + rng.normal(size=p) * 0.1 * scale / np.maximum(np.std(design.X, axis=0), 1)
        lam = np.tril(rng.normal(size=(k, k))) * scale * 0.3 + np.diag(rng.uniform(0.1, 0.5, k) * scale)
        sigma = float(rng.uniform(0.3, 1.0) * scale)
        value, g_beta, g_lam, g_sigma = f(beta, lam, sigma)
        assert value == pytest.approx(_brute_force(design, beta, lam, sigma), abs=1e-9 * max(1.0, abs(value)))
        h = 1e-5
        for i in range(p):
            e = np.zeros(p)
            e[i] = h * max(1.0, abs(beta[i]))
            num = (f(beta + e, lam, sigma)[0] - f(beta - e, lam, sigma)[0]) / (2 * e[i])
            assert g_beta[i] == pytest.approx(num, rel=1e-5, abs=1e-6)
        num = (f(beta, lam, sigma * (1 + h))[0] - f(beta, lam, sigma * (1 - h))[0]) / (2 * h * sigma)
        assert g_sigma == pytest.approx(num, rel=1e-5, abs=1e-6)
        E = np.zeros((k, k))
        E[k - 1, 0] = h * scale
        num = (f(beta, lam + E, sigma)[0] - f(beta, lam - E, sigma)[0]) / (2 * h * scale)
        assert g_lam[k - 1, 0] == pytest.approx(num, rel=1e-5, abs=1e-6)


def test_gaussian_conditional_draws_have_the_conditional_moments():
    """u_j | y, β, Λ, σ: the draws' means and covariances against the dense conditional
    (b_j = Λ u_j: covariance (Z_jᵀZ_j/σ² + (ΛΛᵀ)⁻¹)⁻¹, mean that times Z_jᵀ r_j / σ²), 20,000
    draws of one parameter point; z-scores of the means and variances."""
    m = _three_terms()
    design, block = m.design, m.design.random[0]
    k, D = block.n_terms, 20_000
    beta = np.array([0.3, 1.1, 0.4])
    lam = np.array([[0.8, 0, 0], [0.3, 0.5, 0], [-0.2, 0.1, 0.4]])
    sigma = 0.9
    u = draw_gaussian_effects(gaussian_statistics(design), np.tile(beta, (D, 1)), np.tile(lam, (D, 1, 1)),
                              np.full(D, sigma), np.random.default_rng(0), chunk=50_000)
    assert u.shape == (D, block.n_levels, k)
    z = []
    for j in range(block.n_levels):
        rows = block.index == j
        Z, r = block.Xr[rows], design.y[rows] - design.offset[rows] - design.X[rows] @ beta
        prec = np.eye(k) + lam.T @ Z.T @ Z @ lam / sigma**2  # of u
        cov = np.linalg.inv(prec)
        mean = cov @ lam.T @ Z.T @ r / sigma**2
        sd = np.sqrt(np.diag(cov))
        z += list((u[:, j].mean(axis=0) - mean) / (sd / np.sqrt(D)))
        z += list((u[:, j].var(axis=0) - sd**2) / (sd**2 * np.sqrt(2 / D)))
        emp = np.corrcoef(u[:, j].T)[np.triu_indices(k, 1)]
        exact = (cov / np.outer(sd, sd))[np.triu_indices(k, 1)]
        np.testing.assert_allclose(emp, exact, atol=5 / np.sqrt(D))
    z = np.asarray(z)
    assert abs(z.mean()) < 4 / np.sqrt(len(z)) and np.mean(z**2) < 1.5 and np.max(np.abs(z)) < 4.5


def test_marginal_model_has_sigma_and_the_full_models_priors():
    m = _model("sleepstudy")
    pmodel = build_marginal_model(m.design, m.family, m.priors, as_data=False)
    full = m.pymc_model()
    names = {v.name for v in pmodel.free_RVs}
    assert names == {v.name for v in full.free_RVs} - {f"{m.design.random[0].label}_z"}
    assert "sigma" in names and [p.name for p in pmodel.potentials] == ["marginal_loglik"]


@pytest.mark.slow
def test_marginalized_lmm_speaks_the_posterior_protocol():
    """A short marginalized run: exact (no nodes, no quadrature flag), the full model's variables
    and tables, the random effects near lmer's BLUPs' ordering."""
    m = _model("sleepstudy")
    post = m.sample(draws=300, tune=300, chains=2, random_seed=1, progressbar=False, marginalize=True,
                    nuts_sampler="nutpie", diagnose=False)
    label = m.design.random[0].label
    assert {"beta", f"{label}_sd", f"{label}_corr", "sigma", f"{label}_z", label} <= set(post.idata["posterior"].data_vars)
    assert post.idata["posterior"].attrs["marginalized"] == "exact"
    assert "marginalized_nagq" not in post.idata["posterior"].attrs
    assert not [f for f in post.flags if f.kind == "quadrature"]
    vc = post.variance_components()
    assert set(vc["kind"]) == {"sd", "corr"} and "Residual" in set(vc["group"])
    assert len(post.random_effects()) == 18 * 2 and "Random effects" in str(post)
    assert isinstance(post.predict(), pd.DataFrame)
    # the subjects' effects follow lmer's conditional modes (shrinkage is mild here)
    fit = m.fit("ml")
    blup = fit.random_effects().set_index(["level", "term"])["estimate"]
    mean = post.random_effects().set_index(["level", "term"])["estimate"]
    for term in m.design.random[0].terms:
        a, b = blup.xs(term, level="term"), mean.xs(term, level="term").reindex(blup.xs(term, level="term").index)
        assert np.corrcoef(a, b)[0, 1] > 0.98, term


def test_marginalize_an_lmm_refuses_nagq_and_other_links():
    m = _model("sleepstudy")
    with pytest.raises(ValueError, match="nagq does not apply to a gaussian"):
        m.sample(draws=10, tune=10, chains=1, marginalize=True, nagq=11)
    from bayesglmm.bayes.marginalized import choose_nagq

    with pytest.raises(ValueError, match="no quadrature nodes to choose"):
        choose_nagq(m)
    log = bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy"), family="gaussian", link="log")
    with pytest.raises(ValueError, match="not gaussian with the log link"):
        log.sample(draws=10, tune=10, chains=1, marginalize=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sleepstudy", "milk"])
def test_marginalized_lmm_posterior_equals_the_full_one(name):
    """Quantiles 5/50/95 % of β, the SDs (the correlation) and σ within 3 Monte Carlo SEs of a long
    full run; the random effects' posterior means and SDs likewise."""
    from .test_marginalized import _close_within_mcse, effects_within_mcse, full_and_marginalized

    m = _model(name)
    full, marg = full_and_marginalized(m)
    label = m.design.random[0].label
    names = ["beta", f"{label}_sd", "sigma"] + ([f"{label}_corr"] if m.design.random[0].has_correlation else [])
    _close_within_mcse(marg, full, names)
    effects_within_mcse(marg, full, label)
