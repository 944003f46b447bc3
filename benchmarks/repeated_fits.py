"""Repeated fits of one structure: a later ``sample()`` with the random effects integrated out
(``marginalize=True``) against the full model's later call, in one process.

What a simulation study, a prior sweep or a calibration by simulation pays per fit once the
structure is compiled: each call is a new model of a new simulated data set (a binary response,
``y ~ x + (1 | g)``, ``--groups`` groups of ``--size`` records, group SD 1), 2 chains ×
(``--tune`` + ``--draws``) by nutpie. The two variants alternate call by call, so that a change in
the machine's load falls on both; the first call of each (compiling, or loading from disk) is
left out. Printed: the median seconds a call, the median smallest bulk ESS of the group SD, ESS/s
and the ratios marginalized ÷ full (seconds: ≤ 2 is issue 28's target; ESS/s: > 1 means the
integrated-out sampler gives more per second). Run: ``.venv/bin/python benchmarks/repeated_fits.py``
(``make bench`` runs it).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import bayesglmm as bg


def simulated(seed: int, groups: int, size: int) -> pd.DataFrame:
    """A binary response with a random intercept of SD 1 and a slope 0.3 on a fixed covariate."""
    g = np.repeat(np.arange(groups), size)
    x = np.random.default_rng(0).normal(size=g.size)
    rng = np.random.default_rng(seed)
    eta = 0.3 * x + rng.normal(0.0, 1.0, groups)[g]
    y = (rng.uniform(size=g.size) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{j}" for j in g]})


def one_fit(data: pd.DataFrame, marginalize: bool, a, seed: int) -> tuple[float, float, int | None]:
    """Seconds of model building and ``sample()``, the group SD's bulk ESS, and the nodes used."""
    t0 = time.perf_counter()
    model = bg.GLMM("y ~ x + (1 | g)", data, family="bernoulli")
    post = model.sample(draws=a.draws, tune=a.tune, chains=a.chains, random_seed=seed, progressbar=False,
                        diagnose=False, marginalize=marginalize)
    secs = time.perf_counter() - t0
    ess = float(post.variance_components().query("kind == 'sd'")["ess_bulk"].min())
    return secs, ess, post.idata["posterior"].attrs.get("marginalized_nagq")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=10, help="timed calls of each variant (default 10)")
    p.add_argument("--groups", type=int, default=30)
    p.add_argument("--size", type=int, default=6, help="records a group")
    p.add_argument("--draws", type=int, default=495)
    p.add_argument("--tune", type=int, default=500)
    p.add_argument("--chains", type=int, default=2)
    a = p.parse_args(argv)
    warnings.simplefilter("ignore")
    got = {False: [], True: []}
    nodes = set()
    for seed in range(a.calls + 1):  # call 0 compiles (or loads), untimed
        data = simulated(seed, a.groups, a.size)
        for marginalize in (False, True):
            secs, ess, nagq = one_fit(data, marginalize, a, seed)
            if seed:
                got[marginalize].append((secs, ess))
                if marginalize:
                    nodes.add(nagq)
    print(f"{a.calls} later calls each, {a.groups} groups × {a.size} records, {a.chains} chains × "
          f"({a.tune} + {a.draws}), nutpie; nodes chosen: {sorted(nodes)}")
    rows = {}
    for marginalize, label in ((False, "full model"), (True, "marginalize=True")):
        secs, ess = np.median(np.array(got[marginalize]), axis=0)
        rows[marginalize] = (secs, ess)
        print(f"{label:18s} {secs:6.3f} s a call   ESS {ess:6.0f}   ESS/s {ess / secs:7.0f}")
    (sf, ef), (sm, em) = rows[False], rows[True]
    print(f"marginalized ÷ full: seconds {sm / sf:.2f} (target ≤ 2), ESS/s {(em / sm) / (ef / sf):.2f}")


if __name__ == "__main__":
    main()
