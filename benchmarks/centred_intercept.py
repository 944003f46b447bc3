"""The default intercept prior before and after it moved to the columns' means (docs/priors.md).

sleepstudy with the day counted as a year (``Year = Days + 2010``): the posterior of the slope
under the old default (``Normal(mean(y), 5 sd(y))`` on the raw intercept, given explicitly here)
and under the default (the same prior on the intercept at the columns' means), against the
model with ``Days``. Prints a markdown table. Usage: ``python benchmarks/centred_intercept.py``.
"""

from __future__ import annotations

import time

import numpy as np

import bayesglmm as bg
from bayesglmm.priors import Normal


def main(seed: int = 1) -> None:
    ss = bg.datasets.load("sleepstudy")
    year = ss.assign(Year=ss.Days + 2010)
    m, s = float(ss.Reaction.mean()), float(ss.Reaction.std(ddof=0))
    cases = [
        ("`Days`, default", "Reaction ~ Days + (1 | Subject)", ss, None),
        ("`Year`, prior on the raw intercept (before)", "Reaction ~ Year + (1 | Subject)", year,
         {"(Intercept)": Normal(m, 5 * s)}),
        ("`Year`, default: at the columns' means (after)", "Reaction ~ Year + (1 | Subject)", year, None),
    ]
    print("| model | slope: mean (SD) | SD(Subject) | σ | seconds |")
    print("|---|---|---|---|---|")
    for label, formula, data, priors in cases:
        t0 = time.perf_counter()
        post = bg.GLMM(formula, data, priors=priors).sample(draws=1000, tune=1000, chains=4, random_seed=seed,
                                                             nuts_sampler="nutpie", progressbar=False)
        seconds = time.perf_counter() - t0
        s_ = post.summary().set_index("parameter")
        slope = s_.iloc[1]
        print(f"| {label} | {slope.estimate:.3f} ({slope.std_error:.3f}) | "
              f"{s_.loc['sd((Intercept)|Subject)', 'estimate']:.2f} | {s_.loc['sigma', 'estimate']:.2f} | "
              f"{seconds:.1f} |")
    ref = bg.GLMM("Reaction ~ Days + (1 | Subject)", ss).fit("reml")
    print(f"\nREML (lmer's): slope {ref.beta[1]:.3f} ({np.sqrt(ref.vcov[1, 1]):.3f})")


if __name__ == "__main__":
    main()
