import pytest
from scipy import stats

import bayesglmm as bg


def test_random_slope_test_uses_chi2_1_2_mixture():
    df = bg.datasets.load("sleepstudy")
    full = bg.GLMM("Reaction ~ Days + (Days | Subject)", df).fit("ml")
    red = bg.GLMM("Reaction ~ Days + (1 | Subject)", df).fit("ml")
    row = bg.lrt(full, red).iloc[0]
    stat = 2 * (full.loglik - red.loglik)
    # anova(lmer(..., REML = FALSE) x 2) in R: Chisq = 42.139 on 2 df
    assert row["statistic"] == pytest.approx(42.139, abs=2e-3) and row["df"] == 2
    assert row["p_value_naive"] == pytest.approx(stats.chi2.sf(stat, 2))
    assert row["p_value"] == pytest.approx(0.5 * stats.chi2.sf(stat, 1) + 0.5 * stats.chi2.sf(stat, 2))
    assert row["null_distribution"] == "0.5*chi2(1) + 0.5*chi2(2)"


def test_one_variance_uses_chi2_0_1_mixture_and_halves_p():
    df = bg.datasets.load("salamander")
    full = bg.GLMM("Mate ~ WSf * WSm + (1 | Female) + (1 | Male)", df, family="bernoulli").fit("laplace")
    red = bg.GLMM("Mate ~ WSf * WSm + (1 | Female)", df, family="bernoulli").fit("laplace")
    row = bg.lrt(full, red).iloc[0]
    assert row["df"] == 1 and row["null_distribution"] == "0.5*chi2(0) + 0.5*chi2(1)"
    assert row["p_value"] == pytest.approx(0.5 * row["p_value_naive"])


def test_lrt_errors():
    df = bg.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    lap = bg.GLMM(f, df, family="binomial").fit("laplace")
    with pytest.raises(ValueError, match="has no likelihood"):
        bg.lrt(lap, bg.GLMM(f, df, family="binomial").fit("pql"))
    with pytest.raises(ValueError, match="more parameters"):
        bg.lrt(lap, lap)
    sleep = bg.datasets.load("sleepstudy")
    with pytest.raises(ValueError, match="refit with 'ml'"):
        bg.lrt(bg.GLMM("Reaction ~ Days + (1 | Subject)", sleep).fit("reml"),
               bg.GLMM("Reaction ~ 1 + (1 | Subject)", sleep).fit("reml"))
