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
# # 2. Potomac horse fever: nested random effects
#
# McCulloch's survey describes a study of Potomac horse fever (an equine disease caused by
# *Neorickettsia risticii*) on 511 farms with 2,587 horses, where horses live in social groups
# within farms. Risk factors act at three levels — the horse (age), the social group (kept on
# pasture at night) and the farm (near a creek or river, fly control) — and the question of
# *where the unexplained variation sits* is as interesting as the fixed effects: if it is at the
# farm level, control is a farm-management problem.
#
# The original data are not public, so this notebook **simulates data to the study's design**
# (below, with every number stated), fits the nested model `(1 | farm/group)` by every method
# that applies, and then runs a simulation study of the SD estimators: with about five binary
# outcomes per farm, PQL is known to be biased low (Breslow & Lin 1995).

# %%
import logging
import os
import warnings

import numpy as np
import pandas as pd
import pymc  # noqa: F401  (imported first so that quieting its logger below sticks)

import bayesglmm as bg

# PyMC sets its logger to INFO on import: quiet its "Initializing NUTS ..." messages
logging.getLogger("pymc").setLevel(logging.WARNING)
# Fast mode (CI, BAYESGLMM_FAST=1): fewer draws and replications. The committed notebook ran in full mode.
FAST = os.environ.get("BAYESGLMM_FAST") == "1"
DRAWS, TUNE, CHAINS = (150, 150, 2) if FAST else (2000, 1000, 4)
N_REPS = 4 if FAST else 200
SEED = 20261125

# %% [markdown]
# ## The generating process
#
# * **511 farms**, each with 1, 2 or 3 social groups (probabilities 0.45, 0.35, 0.20);
#   **2,587 horses** spread over the groups at random (every group gets at least one horse).
# * Farm-level covariates: `creek` (within 1 km of a creek or river, probability 0.4) and
#   `fly_control` (probability 0.5). Group level: `night_pasture` (probability 0.5). Horse level:
#   `age` in years, uniform on 1–25, centred at 12 and scaled per 10 years.
# * Linear predictor, logit link:
#   η = −1.6 + 0.3·age₁₀ + 0.8·creek − 0.5·fly_control + 0.6·night_pasture + a_farm + b_group,
#   with a_farm ~ N(0, 1.0²) and b_group ~ N(0, 0.3²) independent: **most of the variance is
#   at the farm level**.
# * `phf` ~ Bernoulli(logit⁻¹ η), one outcome per horse.

# %%
TRUE_BETA = {"Intercept": -1.6, "age": 0.3, "creek": 0.8, "fly_control": -0.5, "night_pasture": 0.6}
TRUE_SD = {"farm": 1.0, "group": 0.3}


def simulate_phf(rng, n_farms=511, n_horses=2587):
    groups_per_farm = rng.choice([1, 2, 3], size=n_farms, p=[0.45, 0.35, 0.20])
    farm_of_group = np.repeat(np.arange(n_farms), groups_per_farm)
    n_groups = farm_of_group.size
    # every group gets one horse, the rest land in groups at random
    group_of_horse = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, n_horses - n_groups)])
    group_of_horse.sort()
    farm = farm_of_group[group_of_horse]
    creek = rng.binomial(1, 0.4, n_farms)[farm]
    fly = rng.binomial(1, 0.5, n_farms)[farm]
    night = rng.binomial(1, 0.5, n_groups)[group_of_horse]
    age = (rng.uniform(1, 25, n_horses) - 12) / 10
    a = rng.normal(0, TRUE_SD["farm"], n_farms)[farm]
    b = rng.normal(0, TRUE_SD["group"], n_groups)[group_of_horse]
    eta = (TRUE_BETA["Intercept"] + TRUE_BETA["age"] * age + TRUE_BETA["creek"] * creek
           + TRUE_BETA["fly_control"] * fly + TRUE_BETA["night_pasture"] * night + a + b)
    # group labels restart within each farm, as in a field record ("group 1 of farm 17")
    group_in_farm = group_of_horse - np.searchsorted(farm_of_group, farm_of_group[group_of_horse])
    return pd.DataFrame({"phf": rng.binomial(1, 1 / (1 + np.exp(-eta))),
                         "farm": [f"F{f:03d}" for f in farm], "group": [f"G{g + 1}" for g in group_in_farm],
                         "age": age.round(3), "creek": creek, "fly_control": fly, "night_pasture": night})


horses = simulate_phf(np.random.default_rng(SEED))
print(f"{len(horses)} horses, {horses['farm'].nunique()} farms, "
      f"{horses.groupby(['farm', 'group']).ngroups} social groups; prevalence {horses['phf'].mean():.3f}")
horses.head()

# %% [markdown]
# Group labels restart within each farm (`G1` on farm `F000` is not `G1` on farm `F001`), so
# the grouping must be written as nested: `(1 | farm/group)` expands to `(1 | farm) + (1 | farm:group)`,
# as in lme4.

# %%
model = bg.GLMM("phf ~ age + creek + fly_control + night_pasture + (1 | farm/group)", horses,
                family="bernoulli")
print(model)

# %% [markdown]
# ## Every method on the same model
#
# AGQ needs a single grouping factor and GEE a single cluster variable, so `compare` skips them
# here and says why; NUTS, Laplace and PQL apply.

# %%
with warnings.catch_warnings():  # each method's warnings are its flags, listed by cmp.notes() below
    warnings.simplefilter("ignore", bg.ConvergenceWarning)
    cmp = bg.compare(model, methods=("nuts", "laplace", "agq", "pql", "gee"), draws=DRAWS, tune=TUNE,
                     chains=CHAINS, random_seed=SEED, progressbar=False)
truth = pd.Series({"(Intercept)": TRUE_BETA["Intercept"], "age": TRUE_BETA["age"], "creek": TRUE_BETA["creek"],
                   "fly_control": TRUE_BETA["fly_control"], "night_pasture": TRUE_BETA["night_pasture"],
                   "sd((Intercept)|farm)": TRUE_SD["farm"], "sd((Intercept)|farm:group)": TRUE_SD["group"]},
                  name="truth")
cmp.formatted(3).join(truth)

# %%
for note in cmp.notes():
    print(note)

# %%
fig = cmp.plot()

# %% [markdown]
# ## Where does the variance sit?
#
# On the logit scale a latent residual has variance π²/3 ≈ 3.29, so the share of the latent
# variance at each level (the variance partition coefficient) is σ²_level / (σ²_farm + σ²_group + π²/3).
# The posterior gives it with an interval.

# %%
post = cmp.results["nuts"]
covs = post.covariance_draws(max_draws=4000)
var = np.array([[c[0][0, 0], c[1][0, 0]] for c in covs])
labels = [b.group for b in model.design.random]
share = var / (var.sum(axis=1, keepdims=True) + np.pi ** 2 / 3)
pd.DataFrame({"level": labels, "posterior mean share": share.mean(axis=0),
              "2.5%": np.quantile(share, 0.025, axis=0), "97.5%": np.quantile(share, 0.975, axis=0),
              "true share": [v / (1.0 + 0.09 + np.pi ** 2 / 3) for v in (1.0, 0.09)]}).round(3)

# %% [markdown]
# The farm level carries nearly all of the between-unit variation; the group-within-farm SD is
# small and poorly determined (with two or three horses per group, the data hardly separate
# group from horse), and the ML estimate may sit on the boundary (a *singular* fit, flagged).
# A likelihood-ratio test of the group level uses the boundary mixture ½χ²₀ + ½χ²₁:

# %%
farm_only = bg.GLMM("phf ~ age + creek + fly_control + night_pasture + (1 | farm)", horses, family="bernoulli")
bg.display_table(bg.lrt(cmp.results["laplace"], farm_only.fit("laplace")))

# %% [markdown]
# ## How good are the SD estimators? A simulation study
#
# One data set says little about an estimator. `simulation_study` redraws the response from the
# true parameters, keeping the design (farms, groups, covariates), refits by each method and
# tabulates bias, RMSE and interval coverage, each with its Monte Carlo standard error.

# %%
study = bg.simulation_study(
    model,
    truth={"beta": truth.iloc[:5].to_numpy(), "sd": {"farm": TRUE_SD["farm"], "farm:group": TRUE_SD["group"]}},
    methods=("laplace", "pql"), n_reps=N_REPS, random_seed=SEED, progress=False)
study

# %%
t = study.table()
t[t["parameter"].str.startswith("sd")][["parameter", "method", "truth", "mean", "bias", "bias_mcse", "rmse"]].round(3)

# %%
fig = study.plot()

# %% [markdown]
# PQL's farm SD is biased low — with about five binary outcomes per farm its working-LMM
# linearization understates the variance — and its fixed effects are attenuated with it.
# Laplace is close to unbiased for the farm SD here. The small group-level SD is hard for
# every method: estimates pile up at 0 (singular fits), which is why its mean can sit below
# the truth even for ML.
#
# ## Summary
#
# * `(1 | farm/group)` fits nested random effects; labels that restart within farms are handled.
# * The variance sits at the farm level: management, not the horse's social group, is where
#   the unexplained risk lies.
# * For binary data with small clusters prefer Laplace/AGQ or the posterior to PQL.
