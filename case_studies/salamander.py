"""Case study: the salamander mating experiments (McCullagh & Nelder 1989, sec. 14.5).

Crossed random effects: each of 60 females and 60 males mated with several partners
of both populations (Rough Butt, Whiteside). The question is whether cross-population
matings succeed less often, allowing for female- and male-specific propensities.

Run: ``.venv/bin/python case_studies/salamander.py`` (about a minute on 2 cores).
"""

import bayesglmm as bg

# lme4::glmer(Mate ~ WSf * WSm + (1 | Female) + (1 | Male), salamander, binomial) — Laplace ML,
# as in ../shared/data/salamander.json (the tests hold the full reference in tests/reference.py)
REF = {"fixef": {"(Intercept)": 1.0081887457, "WSf": -2.9041387949, "WSm": -0.70204773042, "WSf:WSm": 3.5883924137},
       "sd": {("Female", "(Intercept)"): 1.0836678232, ("Male", "(Intercept)"): 1.0202873349}}

model = bg.GLMM("Mate ~ WSf * WSm + (1 | Female) + (1 | Male)",
                data=bg.datasets.load("salamander"), family="bernoulli")
print(model)
print(model.priors.table().to_string(index=False))
post = model.sample(draws=1000, tune=1000, chains=4, random_seed=1)

fe = post.fixed_effects()
fe["glmer_laplace"] = fe["term"].map(REF["fixef"])
print("\nFixed effects: posterior vs lme4::glmer (Laplace ML)")
print(fe[["term", "estimate", "std_error", "conf_low", "conf_high", "glmer_laplace"]].round(3).to_string(index=False))

vc = post.variance_components()
vc["glmer_laplace"] = [REF["sd"].get((g, t)) for g, t in zip(vc["group"], vc["term"])]
print("\nRandom-effect SDs: the posterior median sits above the ML estimate, as the SD's")
print("posterior is right-skewed with 60 levels per factor.")
print(vc[["group", "term", "estimate", "median", "conf_low", "conf_high", "glmer_laplace"]].round(3).to_string(index=False))

# Probability that a Whiteside-female x Rough-Butt-male pairing mates less often than R x R:
beta = post.draws("beta")
print(f"\nP(WSf effect < 0 | data) = {(beta[..., 1] < 0).mean():.3f}")

# bayesglmm's own Laplace fit of the same Design equals glmer's; its profile intervals for the
# SDs sit below the posterior's equal-tailed ones (the posterior is skewed away from 0).
ml = model.fit("laplace")
print("\nLaplace ML (bayesglmm) with profile-likelihood intervals for the SDs")
print(ml.summary(profile=True)[["parameter", "estimate", "std_error", "conf_low", "conf_high"]].round(3)
      .to_string(index=False))
