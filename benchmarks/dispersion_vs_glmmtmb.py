"""The dispersion families' Laplace fits: bayesglmm against glmmTMB, timed in one run on this machine.

Each case of ``bayesglmm/datasets/reference/dispersion.json`` is fitted by ``fit("laplace")`` (and by
``fit("agq")``, which glmmTMB does not offer), the median of ``--reps`` fits after a warm-up, beside
glmmTMB's fit of the same CSV by ``Rscript`` (median of ``--reps`` after a warm-up, ``system.time``
elapsed) when R with glmmTMB is installed: the ratio ``bg/tmb`` and the log-likelihood difference.

Run: ``.venv/bin/python benchmarks/dispersion_vs_glmmtmb.py [--reps 5]``.
"""

import argparse
import json
import statistics
import time
import warnings

import bayesglmm as bg
import rscript

CASES = {"salamanders_nbinom2": "salamander_counts", "epil_nbinom2": "epil", "nb_offset_nbinom2": "nb_offset_sim",
         "cbpp_betabinomial": "cbpp", "gamma_log": "gamma_sim", "nb_slope_nbinom2": "nb_slope_sim"}
FAMILY = {"nbinom2": ("negativebinomial", "nbinom2"), "betabinomial": ("betabinomial", "betabinomial"),
          "Gamma": ("gamma", 'Gamma(link = "log")'), "gamma": ("gamma", 'Gamma(link = "log")')}


def ours(ref, data, method, reps):
    model = bg.GLMM(ref["formula"], data, family=FAMILY[ref["family"]][0], link=ref["link"])
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(method)
        for _ in range(reps):
            t0 = time.perf_counter()
            fit = model.fit(method)
            times.append(time.perf_counter() - t0)
    return statistics.median(times), fit.loglik


def theirs(ref, name, data, reps):
    cats = bg.datasets.info(name).categorical
    formula = ref["formula"].replace("offset(np.log(t))", "offset(log(t))")
    family = FAMILY[ref["family"]][1]

    def lines(tmp):
        return ["suppressMessages(library(glmmTMB))", rscript.data_frame(tmp, name, data, cats),
                f"f <- function() glmmTMB({formula}, family = {family}, data = d)", "m <- f()",
                f"t <- replicate({reps}, system.time(f())[['elapsed']])",
                'cat(sprintf(\'{"seconds": %.6f, "loglik": %.10f}\\n\', median(t), as.numeric(logLik(m))))']

    return rscript.run_json(lines, f"glmmTMB {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    refs = bg.datasets.dispersion_reference()
    print(f"{'case':24s} {'laplace s':>10s} {'agq s':>8s} {'tmb s':>8s} {'bg/tmb':>7s} {'dlogLik':>9s}")
    for case, name in CASES.items():
        ref = refs[case]
        data = bg.datasets.load(name)
        t_lap, ll = ours(ref, data, "laplace", args.reps)
        t_agq = ours(ref, data, "agq", max(1, args.reps // 2))[0] if len(bg.GLMM(
            ref["formula"], data, family=FAMILY[ref["family"]][0], link=ref["link"]).design.random) == 1 else float("nan")
        r = theirs(ref, name, data, args.reps)
        if r is None:
            print(f"{case:24s} {t_lap:10.3f} {t_agq:8.3f} {'–':>8s}")
            continue
        print(f"{case:24s} {t_lap:10.3f} {t_agq:8.3f} {r['seconds']:8.3f} {t_lap / r['seconds']:7.2f} "
              f"{ll - r['loglik']:9.1e}")


if __name__ == "__main__":
    main()
