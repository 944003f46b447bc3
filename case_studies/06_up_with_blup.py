# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. "Up with BLUP": teaching fixed vs random effects
#
# Robinson's "That BLUP is a good thing" (1991) and McCulloch's survey make the same case: treating
# a factor's levels as *random* — draws from a distribution whose variance is estimated — gives
# estimates of each level that borrow strength from the others. This notebook is a lecture in
# six steps:
#
# 1. **Pooling**: no pooling (a fixed effect per level), complete pooling (one value for all),
#    partial pooling (the BLUP, the posterior mean) — and the shrinkage plot.
# 2. **BLUPs vs fixed-effect estimates**: which levels move, and why.
# 3. **Random slopes**: shrinkage in two dimensions.
# 4. **Naive vs clustered standard errors**: what ignoring the grouping does to inference.
# 5. **Testing a variance component**: the likelihood-ratio statistic's null distribution is not
#    χ² when the variance is 0 under the null (a boundary); the 50:50 mixture and the parametric
#    bootstrap, and a simulation showing that the naive χ² p-value is conservative.
# 6. **Comparing the pooling choices by prediction**: leave one observation out, and leave one herd out.

# %%
import logging
import os
import warnings

import numpy as np
import pandas as pd
import pymc  # noqa: F401  (imported first so that quieting its logger below sticks)
from scipy import stats

import bayesglmm as bg

# PyMC sets its logger to INFO on import: quiet its "Initializing NUTS ..." messages
logging.getLogger("pymc").setLevel(logging.WARNING)
# Fast mode (CI, BAYESGLMM_FAST=1): fewer draws and replications. The committed notebook ran in full mode.
FAST = os.environ.get("BAYESGLMM_FAST") == "1"
DRAWS, TUNE, CHAINS = (150, 150, 2) if FAST else (1000, 1000, 4)
N_BOOT = 40 if FAST else 1000
SEED = 20261125

# %% [markdown]
# ## 1. Pooling: contagious bovine pleuropneumonia in 15 herds
#
# `cbpp` (lme4): new cases of CBPP per herd in four periods, out of the herd's size. Herds differ
# in size (and hence in how much each tells us) and in their incidence.

# %%
cbpp = bg.datasets.load("cbpp")
model = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
post = model.sample(draws=DRAWS, tune=TUNE, chains=CHAINS, random_seed=SEED, progressbar=False)
pool = bg.pooling(model, group="herd", posterior=post)
pool

# %%
fig = pool.plot()

# %% [markdown]
# Each arrow runs from a herd's **no-pooling** estimate (its own logit incidence in period 1, a
# fixed effect per herd) to its **partial-pooling** estimate (β₀ + BLUP). The arrows point at the
# population value β₀. How far a herd moves depends on how much its own data say: the
# shrinkage factor is about σ²_b / (σ²_b + v_j), with v_j the sampling variance of the herd's own
# estimate — large for a herd with few animals or few cases (a binomial logit's variance is about
# 1/cases + 1/non-cases).
#
# ## 2. BLUPs vs fixed-effect estimates

# %%
herds = cbpp.groupby("herd", observed=True).agg(animals=("size", "sum"), cases=("incidence", "sum"))
herds.index = herds.index.astype(str)
t = pool.table().set_index("level").join(herds)
t["moved"] = t["partial_pooling"] - t["no_pooling"]
t.sort_values("cases")[["animals", "cases", "no_pooling", "partial_pooling", "partial_pooling_posterior",
                        "moved"]].round(3)

# %% [markdown]
# Sorted by the number of cases: the herds with the fewest cases move the most — their own logits
# are the least certain — and a herd with many cases keeps most of its own estimate, however
# unusual. The posterior means (partial pooling under the priors, integrating over the SD) sit
# next to the BLUPs. (`pool.table()` also has a `shrinkage` column, the share of the way to the
# population value; it is unstable for a herd whose own estimate is already close to it.)
#
# Why is shrinking *better*? Averaged over levels, the BLUPs have a smaller mean squared error than
# the levels' own estimates (James & Stein 1961; Efron & Morris 1975): a little bias for a large
# drop in variance. A quick check: simulate herds from the fitted model, and compare each
# estimator's error against the *true* herd effects.

# %%
fit = model.fit("laplace")
rng = np.random.default_rng(SEED)
sd_herd = fit.variance_components()["estimate"].iloc[0]
herd = cbpp["herd"].astype(str)
eta_fixed = fit.predict(kind="link", random_effects=False)["estimate"].to_numpy()
sq_err = {"no pooling": [], "partial pooling (BLUP)": []}
no_cases = []
for _ in range(20 if FAST else 200):
    b = pd.Series(rng.normal(0, sd_herd, herd.nunique()), index=herd.unique())  # true herd effects
    data = cbpp.copy()
    data["incidence"] = rng.binomial(cbpp["size"], 1 / (1 + np.exp(-(eta_fixed + herd.map(b).to_numpy()))))
    p = bg.pooling(model.update(data=data), group="herd").table()
    level = p["level"].astype(str)
    # a herd without a single case has no finite estimate of its own (its ML logit is -infinity)
    has_cases = (data.groupby(herd)["incidence"].sum().reindex(level) > 0).to_numpy()
    no_cases.append(np.mean(~has_cases))
    truth = fit.beta[0] + b.reindex(level).to_numpy()
    sq_err["no pooling"] += list((p["no_pooling"].to_numpy() - truth)[has_cases] ** 2)
    sq_err["partial pooling (BLUP)"] += list((p["partial_pooling"].to_numpy() - truth)[has_cases] ** 2)
print(f"herds without a case (no finite own estimate; the BLUP still has one): {100 * np.mean(no_cases):.1f}%")
pd.DataFrame({k: [np.mean(v), np.median(v)] for k, v in sq_err.items()},
             index=["mean squared error", "median squared error"]).round(3)

# %% [markdown]
# Over herds that have a finite estimate of their own, the BLUPs' errors are much smaller; and
# the BLUP also exists for the herds whose own data could give none.
#
# %% [markdown]
# ## 3. Random slopes: shrinkage in two dimensions
#
# `sleepstudy` (lme4): reaction times of 18 subjects over 10 days of sleep deprivation. Each
# subject has an intercept and a slope; with `(Days | Subject)` both are shrunk, *jointly*, toward
# the population line — along the direction the estimated covariance allows.

# %%
sleep = bg.datasets.load("sleepstudy")
slopes = bg.GLMM("Reaction ~ Days + (Days | Subject)", sleep)
pool2 = bg.pooling(slopes, group="Subject")
fig = pool2.plot()

# %%
pool2.table().round(2).head(8)

# %% [markdown]
# ## 4. Naive vs clustered standard errors
#
# Ignoring the grouping keeps the fixed-effect *estimates* right in a linear model (here they are
# identical) but gets their *standard errors* wrong. `Days` varies **within** subjects; what makes
# its naive SE too small here is that subjects' slopes vary (the random slope): the naive GLM
# counts 180 independent observations of the slope where there are 18 subjects' slopes. For a
# covariate constant within clusters (notebook 1's `smoke`) the naive SE is too small because of
# the random intercept.

# %%
bg.naive_vs_clustered(slopes)

# %% [markdown]
# ## 5. Testing a variance component
#
# Do subjects' slopes vary? Compare `(1 | Subject) + (0 + Days | Subject)` (uncorrelated random
# slope) with `(1 | Subject)` by a likelihood-ratio test. Under the null the slope's variance is 0 —
# the *edge* of its parameter space — so the statistic is not χ²₁: half of the time the estimate
# sits on the boundary and the statistic is exactly 0. Self & Liang (1987) and Stram & Lee (1994)
# give the null distribution ½χ²₀ + ½χ²₁, so the mixture p-value is *half* the naive one.

# %%
full = bg.GLMM("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep).fit("ml")
reduced = bg.GLMM("Reaction ~ Days + (1 | Subject)", sleep).fit("ml")
bg.display_table(bg.lrt(full, reduced))

# %% [markdown]
# The parametric bootstrap needs no asymptotics: simulate data sets from the *reduced* fit (slope
# variance 0), refit both models to each, and see how often the statistic is as large as observed.

# %%
boot = bg.bootstrap_lrt(full, reduced, n=N_BOOT, random_seed=SEED, progress=False)
boot

# %%
fig = boot.plot()

# %% [markdown]
# The observed statistic is far out in the tail: the slopes vary. The bootstrap's null draws are
# also a **simulation of the test itself** under H₀ — each is a data set where the slope variance
# truly is 0. How often would each p-value reject at 5%?

# %%
t0 = boot.null_statistics[np.isfinite(boot.null_statistics)]
p_naive = stats.chi2.sf(t0, 1)
p_mixture = np.where(t0 <= 1e-8, 1.0, 0.5 * stats.chi2.sf(t0, 1))
rate = pd.DataFrame({"p-value": ["naive chi2(1)", "mixture 0.5 chi2(0) + 0.5 chi2(1)"],
                     "rejection rate at 5%": [np.mean(p_naive < 0.05), np.mean(p_mixture < 0.05)],
                     "share of null statistics = 0": [np.mean(t0 <= 1e-8)] * 2})
rate["MCSE"] = np.sqrt(rate["rejection rate at 5%"] * (1 - rate["rejection rate at 5%"]) / len(t0))
naive, mixture = rate["rejection rate at 5%"]
print(f"{100 * rate['share of null statistics = 0'][0]:.0f}% of the null statistics are exactly 0; at a nominal 5% "
      f"the naive chi2(1) p-value rejects {100 * naive:.1f}% of the time, the mixture {100 * mixture:.1f}% "
      f"(Monte Carlo SEs {100 * rate['MCSE'][0]:.1f} and {100 * rate['MCSE'][1]:.1f} points)")
rate.round(3)

# %% [markdown]
# A large share of the null statistics are exactly 0 (the slope variance estimated on the boundary).
# The printed line gives the rejection rates: the naive χ²₁ p-value rejects less often than the
# mixture's, which is always half of it — the naive test is *conservative*, costing power. The mixture
# itself is an asymptotic answer: with 18 subjects its rate may still sit below the nominal 5% (compare
# it with its Monte Carlo SE), and the bootstrap p-value above needs no asymptotics at all.
#
# ## 6. Which model predicts better? New observations vs new herds
#
# The three pooling choices are three models of the same 56 counts, and "which predicts better" has two
# meanings. A **new observation of a herd already seen** (the next period's cases in herd 7): leave one
# row out at a time. A **new herd** (the question a vet asks before visiting one): leave a whole herd
# out, its effect unknown — each herd's **marginal** likelihood, its random effect integrated out
# (`post.log_likelihood(by="herd")`), the version that PSIS can approximate (Merkle, Furr &
# Rabe-Hesketh 2019). `bg.loo_compare` does both, by Pareto-smoothed importance sampling; a herd whose
# Pareto k exceeds 0.7 is refitted without it (the exact answer, costing one refit).

# %%
kw = dict(draws=DRAWS, tune=TUNE, chains=CHAINS, random_seed=SEED, progressbar=False, diagnose=False)
pooled = {
    "complete pooling": bg.GLMM("cbind(incidence, size - incidence) ~ period", cbpp, family="binomial").sample(**kw),
    "no pooling": bg.GLMM("cbind(incidence, size - incidence) ~ period + herd", cbpp, family="binomial").sample(**kw),
    "partial pooling": post,
}
with warnings.catch_warnings():  # by observation a few rows have high k (the next cell is about k)
    warnings.simplefilter("ignore", UserWarning)
    by_row = bg.loo_compare(pooled, by="observation", reloo=False)
by_row[["rank", "elpd", "se", "elpd_diff", "dse", "p"]].round(1)

# %%
new_herd = bg.loo_compare({k: pooled[k] for k in ("complete pooling", "partial pooling")}, by="herd",
                          progress=False)
with warnings.catch_warnings(record=True) as caught:  # the warning of high Pareto k: the point, printed below
    warnings.simplefilter("always")
    no_pool = pooled["no pooling"].loo(by="herd", reloo=False)
print(f"no pooling, leaving a herd out: {int((no_pool.pareto_k > 0.7).sum())} of 15 herds with Pareto k > 0.7")
print("\n".join(str(w.message) for w in caught))
fig = bg.plots.elpd_comparison(new_herd, title="Predicting a new herd (leave one herd out)")
new_herd[["rank", "elpd", "se", "elpd_diff", "dse", "p"]].round(1)

# %%
best_row, best_herd = by_row.index[0], new_herd.index[0]
print(f"a new observation of a known herd: best {best_row!r}, the others {', '.join(f'{d:.1f}' for d in by_row['elpd_diff'][1:])} "
      f"ELPD lower (SE of the differences {', '.join(f'{d:.1f}' for d in by_row['dse'][1:])})")
print(f"a new herd: best {best_herd!r}; complete pooling {new_herd.loc['complete pooling', 'elpd_diff']:.1f} "
      f"lower (SE {new_herd.loc['complete pooling', 'dse']:.1f}); refits for k > 0.7: "
      f"{sum(v.refits for v in new_herd.attrs['loo'].values())}")

# %% [markdown]
# The two printed lines are the answers. For a new observation of a herd already seen, a herd's own
# data help: complete pooling, which ignores them, is worst, and the partial-pooling model uses them at
# least as well as a free parameter per herd with fewer effective parameters (`p`). For a new herd, the
# question has no answer under no pooling: each herd's coefficient is fitted to that herd alone, so
# leaving it out leaves nothing to predict with — PSIS says so with Pareto k values above 0.7 for most
# herds, and an exact refit would have no coefficient for the herd. Partial pooling predicts a new herd
# from the distribution of herds, and better than complete pooling: the herd variance is what a new
# herd is drawn with.
#
# ## Summary
#
# * Random effects pool partially: levels with little data shrink most, toward the population value.
# * BLUPs trade a little bias for a large drop in variance: a smaller mean squared error.
# * Clustered data need clustered inference: naive SEs are wrong in either direction.
# * A variance component tested at 0 is on a boundary: use the ½χ² mixture or the parametric
#   bootstrap, not χ².
# * "Predicts better" depends on what is new: leave one observation out for a known group, one group
#   out (its marginal likelihood) for a new one — where only partial pooling has an answer.
