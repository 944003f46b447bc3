"""Pointwise and group-wise log-likelihoods, LOO and model comparison (bayesglmm.bayes.loo).

Most tests build a Posterior from synthetic draws around an ML fit (no sampling, no compiling): the
log-likelihood functions depend on the draws only."""

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import integrate, stats

import bayesglmm as bg
from bayesglmm.bayes.loo import group_loglik, group_rows, observation_loglik, parameter_draws
from bayesglmm.bayes.posterior import Posterior


def synthetic_posterior(model, fit, chains=2, draws=30, seed=0, spread=0.3):
    """A Posterior whose draws scatter around ``fit``'s estimates (the variables NUTS would store)."""
    rng = np.random.default_rng(seed)
    design = model.design
    S = (chains, draws)
    data = {"beta": (("chain", "draw", "fixed"),
                     fit.beta + spread * rng.normal(size=S + (len(fit.beta),)) * np.sqrt(np.diag(fit.vcov)))}
    coords = {"chain": np.arange(chains), "draw": np.arange(draws), "fixed": list(design.fixed_names)}
    for block, S_ in zip(design.random, fit.covariances()):
        sd = np.sqrt(np.diag(S_)) * np.exp(0.2 * rng.normal(size=S + (block.n_terms,)))
        level, term = f"{block.group}_level", f"{block.label}_term"
        coords[level], coords[term] = list(block.levels), list(block.terms)
        data[f"{block.label}_sd"] = (("chain", "draw", term), sd)
        data[block.label] = (("chain", "draw", level, term),
                             sd[:, :, None, :] * rng.normal(size=S + (block.n_levels, block.n_terms)))
        if block.has_correlation:
            R = np.broadcast_to(np.eye(block.n_terms), S + (block.n_terms, block.n_terms)).copy()
            R[..., 0, 1] = R[..., 1, 0] = 0.3
            coords[f"{block.label}_term_bis"] = list(block.terms)
            data[f"{block.label}_corr"] = (("chain", "draw", term, f"{block.label}_term_bis"), R)
    if model.family.has_scale:
        data["sigma"] = (("chain", "draw"), fit.dispersion * np.exp(0.05 * rng.normal(size=S)))
    if model.family.has_dispersion:
        data[model.family.dispersion_name] = (("chain", "draw"), fit.dispersion * np.exp(0.1 * rng.normal(size=S)))
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(data, coords=coords)})
    return Posterior(model, tree)


@pytest.fixture(scope="module")
def cbpp():
    model = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", bg.datasets.load("cbpp"),
                    family="binomial")
    return model, synthetic_posterior(model, model.fit("laplace"))


def test_group_loglik_equals_frequentist_agq_per_group_terms(cbpp):
    """At each draw, the levels' marginal log-likelihoods are the frequentist AGQ's per-group terms at the same
    (β, θ) with the same nodes (to 1e-9), and one level's equals an independent integral (SciPy's quad) to 1e-5."""
    from bayesglmm.frequentist.agq import agq_loglik, group_data
    from bayesglmm.frequentist.pirls import pirls
    from bayesglmm.frequentist.theta import ThetaMap

    model, post = cbpp
    ll = post.log_likelihood(by="herd")
    assert ll.dims == ("chain", "draw", "herd") and list(ll["herd"].values) == [str(v) for v in
                                                                                  model.design.random[0].levels]
    nagq = ll.attrs["nagq"]
    draws = parameter_draws(post)
    flat = ll.values.reshape(draws.n, -1)
    design, family = model.design, model.family
    for s in (0, 17, 41):
        L = draws.factors[0][s]
        state = pirls(design, family, ThetaMap(design).ZLambda(np.array([L[0, 0]])), draws.beta[s])
        total = agq_loglik(design, family, L, draws.beta[s], state.u, nagq, group_data(design, distinct=False))
        assert flat[s].sum() == pytest.approx(total, abs=1e-9)
    s, j = 5, 3
    rows = group_rows(design, "herd")
    sel = rows.index == j
    eta = design.offset[sel] + design.X[sel] @ draws.beta[s]
    sd = draws.factors[0][s][0, 0]

    def f(b):
        return np.exp(family.loglik_obs(design.y[sel], family.link.inverse(eta + b), design.trials[sel]).sum()
                      + stats.norm.logpdf(b, 0, sd))

    exact = np.log(integrate.quad(f, -12 * sd, 12 * sd, epsabs=0, epsrel=1e-12, limit=400)[0])
    assert flat[s, j] == pytest.approx(exact, abs=1e-5)  # measured 1.2e-6: nodes settled to 1e-4 of the sum


def test_observation_loglik_is_the_family_at_each_draw(cbpp):
    model, post = cbpp
    ll = observation_loglik(post)
    assert ll.dims == ("chain", "draw", "obs") and ll.shape[2] == model.design.nobs
    draws = parameter_draws(post)
    s = 7
    b = draws.effects[0][s]
    assert ll.values.reshape(draws.n, -1)[s].sum() == pytest.approx(model.loglik(draws.beta[s], [b]), rel=1e-12)


def test_gaussian_group_loglik_is_the_multivariate_normal():
    """An LMM's group log-likelihood is exact: each subject's rows N(Xβ, σ²I + Z Σ Zᵀ) (SciPy), with a
    correlated block."""
    model = bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy"))
    post = synthetic_posterior(model, model.fit("ml"))
    ll = post.log_likelihood(by="Subject")
    assert ll.attrs["nagq"] is None
    draws = parameter_draws(post)
    design, block = model.design, model.design.random[0]
    for s in (0, 11):
        L = draws.factors[0][s]
        Sigma = L @ L.T
        for j in (0, 9):
            sel = block.index == j
            Z = block.Xr[sel]
            cov = draws.second[s] ** 2 * np.eye(sel.sum()) + Z @ Sigma @ Z.T
            mean = design.X[sel] @ draws.beta[s]
            want = stats.multivariate_normal(mean, cov).logpdf(design.y[sel])
            assert ll.values.reshape(draws.n, -1)[s, j] == pytest.approx(want, abs=1e-8)


def test_crossed_factors_condition_on_the_other_factors_draws():
    """Salamander (crossed Female, Male): a Female's marginal likelihood integrates her effect with the males'
    effects at their draws — the same as a one-factor model whose offset holds them."""
    data = bg.datasets.load("salamander")
    model = bg.GLMM("Mate ~ WSf * WSm + (1 | Female) + (1 | Male)", data, family="bernoulli")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = synthetic_posterior(model, model.fit("laplace"), draws=5)
    ll = post.log_likelihood(by="Female", nagq=15)
    draws = parameter_draws(post)
    male = model.design.random[1]
    s = 3
    offset = draws.effects[1][s][male.index, 0]
    one = bg.GLMM("Mate ~ WSf * WSm + offset(male_effect) + (1 | Female)", data.assign(male_effect=offset),
                  family="bernoulli")
    from bayesglmm.bayes.loo import marginal_group_loglik

    rows = group_rows(one.design, "Female")
    base = one.design.offset + one.design.X @ draws.beta[s]
    want = marginal_group_loglik(one.family, one.design.y, None, base, rows.Xr * draws.factors[0][s][0, 0], rows, 15)
    np.testing.assert_allclose(ll.values.reshape(draws.n, -1)[s], want, atol=1e-10)


def test_dispersion_family_group_loglik(cbpp):
    """The negative binomial's group log-likelihood at a draw: SciPy's quad of the NB2 likelihood times the
    normal density, to 1e-5 (measured 1.3e-6: the nodes are chosen for 1e-4 of the sum)."""
    model = bg.GLMM("y ~ x + offset(np.log(t)) + (1 | g)", bg.datasets.load("nb_offset_sim"), family="negativebinomial")
    post = synthetic_posterior(model, model.fit("laplace"), draws=10)
    ll = post.log_likelihood(by="g")
    draws = parameter_draws(post)
    s, j = 4, 2
    design = model.design
    sel = design.random[0].index == j
    eta = design.offset[sel] + design.X[sel] @ draws.beta[s]
    sd, theta = draws.factors[0][s][0, 0], draws.second[s]
    fam = model.family.with_dispersion(theta)

    def f(b):
        return np.exp(fam.loglik_obs(design.y[sel], np.exp(eta + b)).sum() + stats.norm.logpdf(b, 0, sd))

    exact = np.log(integrate.quad(f, -12 * sd, 12 * sd, epsabs=0, epsrel=1e-12, limit=400)[0])
    assert ll.values.reshape(draws.n, -1)[s, j] == pytest.approx(exact, abs=1e-5)  # nodes settled to 1e-4 a sum


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")  # ArviZ's own, called directly
def test_loo_by_group_is_arviz_loo_on_the_group_matrix(cbpp):
    import arviz as az

    model, post = cbpp
    res = post.loo(by="herd", reloo=False)
    ll = post.log_likelihood(by="herd")
    ref = az.loo(xr.DataTree.from_dict({"posterior": post.idata["posterior"].to_dataset(),
                                        "log_likelihood": xr.Dataset({"y": ll})}), var_name="y", pointwise=True)
    assert res.elpd == pytest.approx(ref.elpd) and res.n_data_points == 15
    np.testing.assert_allclose(res.pareto_k.values, ref.pareto_k.values)
    assert res.refits == 0 and res.by == "herd"


def test_errors_name_what_is_wrong(cbpp):
    model, post = cbpp
    with pytest.raises(ValueError, match="names no grouping factor"):
        post.log_likelihood(by="farm")
    with pytest.raises(ValueError, match="nagq applies"):
        post.log_likelihood(nagq=5)
    with pytest.raises(TypeError, match="unexpected keyword argument.*'log_likelihoods'"):
        model.sample(draws=10, tune=10, chains=1, log_likelihoods=True)
    other = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                    bg.datasets.load("cbpp").assign(incidence=lambda d: d["incidence"] // 2), family="binomial")
    with pytest.raises(ValueError, match="different data"):
        bg.loo_compare({"a": post, "b": synthetic_posterior(other, other.fit("laplace"))})
    with pytest.raises(ValueError, match="at least two"):
        bg.loo_compare({"a": post})


def test_compare_models_ranks_ml_fits_with_boundary_corrected_lrts():
    """sleepstudy by ML: as R's anova(m0, m1, m2) — logLik −955.27, −897.04, −875.97; the slope model
    first by AIC; the random slope's test against the intercept-only model χ² = 42.14 on 2 df, its
    p-value from the 50:50 mixture of χ²₁ and χ²₂ (the boundary)."""
    d = bg.datasets.load("sleepstudy")
    fits = {"intercept": bg.GLMM("Reaction ~ Days + (1 | Subject)", d).fit("ml"),
            "slope": bg.GLMM("Reaction ~ Days + (Days | Subject)", d).fit("ml"),
            "null": bg.GLMM("Reaction ~ 1 + (1 | Subject)", d).fit("ml")}
    table = bg.compare_models(fits)
    assert list(table.index) == ["slope", "intercept", "null"] and list(table["rank"]) == [0, 1, 2]
    assert table.loc["slope", "loglik"] == pytest.approx(-875.9697, abs=1e-3)
    assert table.loc["intercept", "lrt_against"] == "slope"
    assert table.loc["intercept", "statistic"] == pytest.approx(42.1393, abs=1e-3)
    assert table.loc["intercept", "p_value"] == pytest.approx(0.5 * stats.chi2.sf(42.1393, 1)
                                                              + 0.5 * stats.chi2.sf(42.1393, 2), rel=1e-3)
    assert table["weight"].sum() == pytest.approx(1.0) and list(table["df"]) == [6, 4, 3]
    with pytest.raises(ValueError, match="one method"):
        bg.compare_models({"a": fits["slope"], "b": bg.GLMM("Reaction ~ Days + (1 | Subject)", d).fit("reml")})


@pytest.mark.slow
def test_sampled_log_likelihood_feeds_arviz_and_loo_compare_ranks_a_random_slope_first():
    """sample(log_likelihood=True) → az.loo(post.idata) works; leaving one subject out, the random-slope model
    of sleepstudy predicts a new subject better than the random-intercept one (by more than the
    difference's SE)."""
    import arviz as az

    d = bg.datasets.load("sleepstudy")
    # diagnose=False: this tests LOO, not the short runs' R-hat and ESS (their SamplingWarning is an error here)
    kw = dict(draws=400, tune=400, chains=2, random_seed=3, progressbar=False, nuts_sampler="nutpie", diagnose=False)
    slope = bg.GLMM("Reaction ~ Days + (Days | Subject)", d).sample(log_likelihood=True, **kw)
    intercept = bg.GLMM("Reaction ~ Days + (1 | Subject)", d).sample(**kw)
    assert "Reaction" in slope.idata["log_likelihood"].data_vars
    assert np.isfinite(az.loo(slope.idata).elpd)
    table = bg.loo_compare({"intercept": intercept, "slope": slope}, by="Subject", reloo=False)
    # measured: the slope model 19.0 ELPD ahead, the difference's SE 12.1 (18 subjects)
    assert table.index[0] == "slope" and abs(table.loc["intercept", "elpd_diff"]) > table.loc["intercept", "dse"]
    fig = bg.plots.elpd_comparison(table)
    assert fig.axes


@pytest.mark.slow
def test_psis_by_group_agrees_with_exact_leave_one_group_out_refits():
    """cbpp: every herd's PSIS ELPD against the exact one from a refit without it (k_threshold below every k:
    15 refits); the totals within the PSIS estimate's SE, and each herd within 0.5."""
    model = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", bg.datasets.load("cbpp"),
                    family="binomial")
    post = model.sample(draws=500, tune=500, chains=2, random_seed=5, progressbar=False, nuts_sampler="nutpie",
                        diagnose=False)
    psis = post.loo(by="herd", reloo=False)
    exact = post.loo(by="herd", k_threshold=-np.inf, random_seed=6, progress=False)
    assert exact.refits == 15 and float(np.max(exact.pareto_k.values)) == 0.0
    assert abs(exact.elpd - psis.elpd) < psis.se
    np.testing.assert_allclose(exact.elpd_i.values, psis.elpd_i.values, atol=0.5)
