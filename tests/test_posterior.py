import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.bayes.posterior import SamplingWarning, summarize_draws
from bayesglmm.results import FIXED_COLUMNS, RE_COLUMNS, VC_COLUMNS

from .reference import CBPP_GLMER_LAPLACE, SALAMANDER_GLMER_LAPLACE


@pytest.fixture(scope="module")
def cbpp_model():
    return bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                   bg.datasets.load("cbpp"), family="binomial")


@pytest.mark.slow
def test_same_seed_same_draws(cbpp_model):
    kw = dict(draws=100, tune=100, chains=2, random_seed=7, progressbar=False, diagnose=False)
    a, b = cbpp_model.sample(**kw), cbpp_model.sample(**kw)
    np.testing.assert_array_equal(a.draws("beta"), b.draws("beta"))
    np.testing.assert_array_equal(a.draws("1|herd"), b.draws("1|herd"))


def test_tables_schema_and_diagnostic_warning(cbpp_model):
    with pytest.warns(SamplingWarning, match="ESS"):
        post = cbpp_model.sample(draws=50, tune=100, chains=2, random_seed=3, progressbar=False)
    fe, vc, re = post.fixed_effects(), post.variance_components(), post.random_effects()
    assert tuple(fe.columns[:6]) == FIXED_COLUMNS and {"r_hat", "ess_bulk"} <= set(fe.columns)
    assert list(fe["term"]) == list(cbpp_model.design.fixed_names)
    assert tuple(vc.columns[:9]) == VC_COLUMNS and vc.loc[0, "kind"] == "sd"
    assert tuple(re.columns[:8]) == RE_COLUMNS and len(re) == 15
    assert (fe["method"] == "nuts").all()
    assert (fe["conf_low"] < fe["estimate"]).all() and (fe["estimate"] < fe["conf_high"]).all()
    assert list(post.summary()["parameter"])[-1] == "sd((Intercept)|herd)"
    beta = post.draws("beta").reshape(-1, 4)
    np.testing.assert_allclose(fe["estimate"], beta.mean(0))
    np.testing.assert_allclose(fe["conf_high"], np.quantile(beta, 0.975, axis=0))


def test_summarize_draws_matches_numpy():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(4, 500, 2))
    s = summarize_draws(d, ci=0.9)
    np.testing.assert_allclose(s["estimate"], d.reshape(-1, 2).mean(0))
    np.testing.assert_allclose(s["conf_low"], np.quantile(d.reshape(-1, 2), 0.05, axis=0))
    assert np.all(s["r_hat"] < 1.01) and np.all(s["ess_bulk"] > 1000)


def test_bad_sampling_arguments(cbpp_model):
    with pytest.raises(ValueError, match="draws must be a positive integer"):
        cbpp_model.sample(draws=0)
    with pytest.raises(ValueError, match="nuts_sampler"):
        cbpp_model.sample(nuts_sampler="hmc")


def _check_against_glmer(post, ref):
    """Posterior means within 0.4 and medians within 0.35 posterior SD of glmer; SD medians within 30%;
    healthy chains.

    The mean of salamander's WSf:WSm sits ≈ 0.28 SD from the ML estimate in expectation (the
    posterior is skewed: larger SDs go with larger |β|), so a 0.3 bound on the mean failed on
    about one seed in three; the median, between mean and mode, is the stable check. Under the
    default priors scaled by each column's spread beside the others (wider for an interaction of
    two factors: WSf:WSm's SD 10 against 5.8) the posterior sits a little further out: over seeds
    12–14, WSf's and WSf:WSm's medians 0.26–0.30 SD and means 0.31–0.35 SD from glmer.
    """
    fe = post.fixed_effects().set_index("term")
    for term, ml in ref["fixef"].items():
        sd = fe.loc[term, "std_error"]
        z = abs(fe.loc[term, "estimate"] - ml) / sd
        assert z <= 0.4, f"{term}: posterior mean {fe.loc[term, 'estimate']:.3f} vs glmer {ml:.3f} ({z:.2f} SD)"
        zm = abs(fe.loc[term, "median"] - ml) / sd
        assert zm <= 0.35, f"{term}: posterior median {fe.loc[term, 'median']:.3f} vs glmer {ml:.3f} ({zm:.2f} SD)"
    vc = post.variance_components().set_index(["group", "term"])
    for key, ml in ref["sd"].items():
        med = vc.loc[key, "median"]
        assert abs(med / ml - 1) <= 0.30, f"SD {key}: median {med:.3f} vs glmer {ml:.3f}"
    diag = post.diagnostics(warn=False)
    assert diag["divergences"] == 0
    assert diag["max_r_hat"] <= 1.01


@pytest.mark.slow
def test_cbpp_posterior_agrees_with_glmer(cbpp_model):
    post = cbpp_model.sample(draws=1000, tune=1000, chains=4, random_seed=11, progressbar=False)
    _check_against_glmer(post, CBPP_GLMER_LAPLACE)


@pytest.mark.slow
def test_salamander_posterior_agrees_with_glmer():
    model = bg.GLMM("Mate ~ WSf * WSm + (1 | Female) + (1 | Male)", bg.datasets.load("salamander"),
                    family="bernoulli")
    post = model.sample(draws=1000, tune=1000, chains=4, random_seed=12, progressbar=False)
    _check_against_glmer(post, SALAMANDER_GLMER_LAPLACE)


@pytest.mark.slow
def test_recovers_correlated_random_slopes():
    """Logistic model with correlated random intercepts and slopes (LKJ): truth inside 95% intervals."""
    rng = np.random.default_rng(2024)
    J, n_per = 60, 30
    sd, rho, beta = np.array([1.0, 0.6]), 0.5, np.array([-0.4, 0.8])
    cov = np.diag(sd) @ np.array([[1, rho], [rho, 1]]) @ np.diag(sd)
    b = rng.multivariate_normal(np.zeros(2), cov, size=J)
    g = np.repeat(np.arange(J), n_per)
    x = rng.normal(size=J * n_per)
    eta = beta[0] + b[g, 0] + (beta[1] + b[g, 1]) * x
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    df = pd.DataFrame({"y": y, "x": x, "g": [f"s{j:02d}" for j in g]})
    post = bg.GLMM("y ~ x + (1 + x | g)", df, family="bernoulli").sample(
        draws=1000, tune=1000, chains=4, random_seed=5, progressbar=False)
    fe = post.fixed_effects()
    vc = post.variance_components()
    truth = list(beta) + [sd[0], sd[1], rho]
    est = pd.concat([fe[["conf_low", "conf_high"]], vc[["conf_low", "conf_high"]]], ignore_index=True)
    assert list(vc["kind"]) == ["sd", "sd", "corr"]
    for t, (lo, hi) in zip(truth, est.to_numpy()):
        assert lo <= t <= hi, (t, lo, hi)
    assert post.diagnostics(warn=False)["divergences"] == 0
