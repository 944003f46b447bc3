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
# # 1. Longitudinal binary data: wheeze in the Six Cities study
#
# McCulloch's survey opens with the classic longitudinal question: repeated binary outcomes on
# the same subjects are correlated, so a logistic regression that treats the 2,148 records as
# independent gets the standard errors of subject-level covariates wrong, and a GLMM and GEE
# answer *different* questions. The data are geepack's `ohio`: 537 children, wheeze (`resp`)
# recorded at ages 7–10 (`age` centred at 9), and whether the mother smoked in the first year of
# the study (`smoke`, constant within a child).
#
# This notebook
# 1. fits the naive logistic regression, the cluster-robust one, GEE and the GLMM side by side
#    (`naive_vs_clustered`);
# 2. fits the GLMM by NUTS, Laplace, AGQ, PQL and GEE on one table (`compare`), with the GLMM's
#    coefficients *marginalized* onto GEE's population-averaged scale;
# 3. adds a random slope on age;
# 4. ranks the children by their own propensity to wheeze, with P(effect > c).

# %%
import logging
import os

import numpy as np
import pymc  # noqa: F401  (imported first so that quieting its logger below sticks)

import bayesglmm as bg

# PyMC sets its logger to INFO on import: quiet its "Initializing NUTS ..." messages
logging.getLogger("pymc").setLevel(logging.WARNING)
# Fast mode (CI, BAYESGLMM_FAST=1): fewer draws. The committed notebook ran in full mode.
FAST = os.environ.get("BAYESGLMM_FAST") == "1"
# (2,000 draws a chain in full mode: at 1,000 the posterior's max R-hat was 1.011, just above the 1.01 rule)
DRAWS, TUNE, CHAINS = (150, 150, 2) if FAST else (2000, 1000, 4)
SEED = 20261125

ohio = bg.datasets.load("ohio")
ohio.head()

# %%
print(bg.datasets.info("ohio").description)
bg.display_table(ohio.groupby("age")[["resp"]].mean().T, digits=3)

# %% [markdown]
# ## Naive vs clustered
#
# `smoke` is a *cluster-level* covariate: it does not vary within a child. The naive logistic
# regression acts as if each child contributed four independent observations about it.

# %%
model = bg.GLMM("resp ~ age + smoke + (1 | id)", ohio, family="bernoulli")
nvc = bg.naive_vs_clustered(model)
nvc

# %%
t = nvc.table()
smoke = t[t["term"] == "smoke"].set_index("method")["std_error"]
print(f"naive SE of smoke {smoke['glm (naive)']:.3f} vs cluster-robust {smoke['glm (cluster-robust)']:.3f}: "
      f"the naive one is {100 * (1 - smoke['glm (naive)'] / smoke['glm (cluster-robust)']):.0f}% too small")

# %% [markdown]
# The naive and the cluster-robust GLM share their point estimates (the estimating equations are
# the same); only the clustered standard errors are honest. GEE with an exchangeable working
# correlation is nearly the same fit. The GLMM's coefficients are larger in magnitude: they are
# *subject-specific* — the change in a given child's log-odds — while the others describe the
# population's proportion of wheezing children.

# %% [markdown]
# ## One model, every method
#
# `compare` fits the same design by NUTS (the posterior under the package's default priors),
# Laplace and adaptive Gauss–Hermite (maximum likelihood), PQL and GEE. With GEE among the
# methods it adds the GLMM's **marginalized** coefficients — the GLMM's implied
# population-averaged curve, refitted on the logit scale — which are the ones to set against GEE.

# %%
cmp = bg.compare(model, methods=("nuts", "laplace", "agq", "pql", "gee"), draws=DRAWS, tune=TUNE,
                 chains=CHAINS, random_seed=SEED, progressbar=False)
cmp.formatted(3)

# %%
for note in cmp.notes():
    print(note)

# %%
fig = cmp.plot()

# %% [markdown]
# Read the table row by row:
#
# * **Laplace vs AGQ.** With four binary records per child and a between-child SD near 2 the
#   Laplace approximation is rough; AGQ is the accurate likelihood (with the nodes it chooses,
#   51 here: 25 put its maximum 4e-4 too high). Their gap is the Laplace error.
# * **PQL** shrinks the SD (and with it the coefficients) towards 0, the known bias for binary
#   data with small clusters (Breslow & Lin 1995).
# * **GEE vs the GLMM.** The conditional intercept is far from GEE's; the marginalized rows
#   (`agq (marginal)`, `nuts (marginal)`) agree with GEE within a fraction of a standard error.
#   Comparing a GLMM's coefficient with GEE's directly is comparing two different estimands.

# %%
wide = cmp.wide()
bg.display_table(wide.loc[[p for p in wide.index if not p.startswith("sd")],
                          [c for c in wide.columns if "agq" in c or "gee" in c]])

# %% [markdown]
# ## A random slope on age
#
# Do children differ in how their wheeze changes with age? A random slope, correlated with the
# intercept, and a likelihood-ratio test of it. The slope's variance is on the boundary of its
# parameter space under the null, so the reference distribution is a mixture of χ²₁ and χ²₂
# (Self & Liang 1987), which `bg.lrt` uses.

# %%
slope_model = bg.GLMM("resp ~ age + smoke + (1 + age | id)", ohio, family="bernoulli")
slope_fit = slope_model.fit("laplace")
print(slope_fit)

# %%
bg.display_table(bg.lrt(slope_fit, model.fit("laplace")))

# %% [markdown]
# ## Which children are most prone to wheeze?
#
# Each child's random intercept is their log-odds of wheeze relative to a typical child of the
# same age and exposure. The posterior ranks them with honest uncertainty:
# `prob_above` = P(bᵢ > log 2), the probability that a child's odds are more than twice a typical
# child's, and the 95% interval of each child's *rank* among the 537.

# %%
post = cmp.results["nuts"]
ranked = bg.rank_levels(post, group="id", threshold=np.log(2))
ranked.head(10)[["rank", "level", "estimate", "conf_low", "conf_high", "prob_above", "rank_low", "rank_high"]].round(3)

# %%
fig = bg.plots.caterpillar(ranked.head(40), threshold=np.log(2),
                           title="The 40 highest random intercepts (of 537), with P(b > log 2)")

# %% [markdown]
# The top children's rank intervals are wide: with four binary records each, many children
# share the same pattern (wheeze at every visit), and the data cannot order them. A ranking by
# point estimates alone would suggest a precision that is not there.
#
# ## Summary
#
# * A cluster-level covariate's naive SE is too small; cluster-robust, GEE and the GLMM fix it.
# * GLMM coefficients are subject-specific; marginalize them before setting them against GEE.
# * With small binary clusters and a large SD, Laplace and PQL are biased; AGQ and the posterior
#   agree.
