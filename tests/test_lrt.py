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


def test_models_that_are_not_nested_are_refused():
    """Issue 23: lrt took any pair with the same response and more parameters in the full model."""
    import numpy as np

    df = bg.datasets.load("salamander")
    full = bg.GLMM("Mate ~ WSf * WSm + (1 | Female) + (1 | Male)", df, family="bernoulli").fit("laplace")
    # a permuted covariate: the same label, another column
    perm = df.assign(WSf=np.random.default_rng(0).permutation(df["WSf"]))
    permuted = bg.GLMM("Mate ~ WSf + (1 | Female)", perm, family="bernoulli").fit("laplace")
    with pytest.raises(ValueError, match=r"not nested: the reduced model's fixed-effect column\(s\) 'WSf' are not in "
                                         r"the span of the full model's"):
        bg.lrt(full, permuted)
    # another fixed effect
    other_x = bg.GLMM("Mate ~ Season + (1 | Female)", df, family="bernoulli").fit("laplace")
    with pytest.raises(ValueError, match=r"'Season\[Summer\]' are not in the span"):
        bg.lrt(full, other_x)
    # another grouping factor
    with pytest.warns(bg.ConvergenceWarning, match="singular fit"):  # Cross has no variance here
        other_g = bg.GLMM("Mate ~ WSf * WSm + (1 | Cross)", df, family="bernoulli").fit("laplace")
    with pytest.raises(ValueError, match="grouping factor 'Cross' groups the rows as no grouping factor of the full"):
        bg.lrt(full, other_g)
    # another family or link
    probit = bg.GLMM("Mate ~ WSf * WSm + (1 | Female)", df, family="bernoulli", link="probit").fit("laplace")
    with pytest.raises(ValueError, match=r"not nested: the full model is bernoulli \(logit link\)"):
        bg.lrt(full, probit)
    # the same grouping but a block the full model's does not contain: (x | g) is not inside (1 | g) + (0 + x | g)
    sleep = bg.datasets.load("sleepstudy")
    uncorrelated = bg.GLMM("Reaction ~ Days + (Days || Subject)", sleep).fit("ml")
    with pytest.raises(ValueError, match=r"random block '1\+Days\|Subject' is not within one random block"):
        bg.lrt(uncorrelated, bg.GLMM("Reaction ~ Days + (Days | Subject)", sleep).fit("ml"))
    # other rows
    with pytest.raises(ValueError, match="not of the same response data"):
        bg.lrt(bg.GLMM("Reaction ~ Days + (Days | Subject)", sleep).fit("ml"),
               bg.GLMM("Reaction ~ 1 + (1 | Subject)", sleep.iloc[:-1]).fit("ml"))


def test_nested_pairs_are_still_tested():
    """Dropping a fixed term, splitting a correlated block, merging a factor's levels: nested by span."""
    df = bg.datasets.load("sleepstudy").assign(half=lambda d: (d["Days"] >= 5).map({True: "late", False: "early"}),
                                               day=lambda d: d["Days"].astype(str))
    full = bg.GLMM("Reaction ~ Days + (Days | Subject)", df).fit("ml")
    for reduced in ("Reaction ~ 1 + (Days | Subject)", "Reaction ~ Days + (Days || Subject)",
                    "Reaction ~ Days + (1 | Subject)", "Reaction ~ 1 + (1 | Subject)"):
        row = bg.lrt(full, bg.GLMM(reduced, df).fit("ml")).iloc[0]
        assert row["statistic"] >= 0 and 0 <= row["p_value"] <= 1
    merged = bg.lrt(bg.GLMM("Reaction ~ day + (1 | Subject)", df).fit("ml"),
                    bg.GLMM("Reaction ~ half + (1 | Subject)", df).fit("ml")).iloc[0]
    assert merged["df"] == 8
