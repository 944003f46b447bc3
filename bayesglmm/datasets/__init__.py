"""Real data sets bundled with the package (nothing is downloaded).

Each entry records its source, what its columns mean, the reference model fitted
to it in R, and which columns are categorical. :func:`reference` returns the R
reference fits (``reference/NAME.json`` inside this package, each method with the R call
and package versions that produced it), read alike by the tests, benchmarks and case studies. :func:`load` returns a fresh :class:`pandas.DataFrame`; categorical
columns are strings, so their levels sort alphabetically as in the R references.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

import pandas as pd

__all__ = ["load", "list_datasets", "info", "DatasetInfo", "reference", "profile_reference", "prediction_reference",
           "dispersion_reference", "from_r_label"]


@dataclass(frozen=True)
class DatasetInfo:
    """Provenance and reference model of a bundled data set."""

    name: str
    source: str
    description: str
    formula: str
    family: str
    categorical: tuple[str, ...] = ()


_DATASETS = {
    "cbpp": DatasetInfo(
        "cbpp", "lme4 (R); Lesnoff et al. (2004), Prev. Vet. Med. 64, 89-104",
        "Contagious bovine pleuropneumonia: new serological cases (incidence) among size "
        "zebu cattle, 15 herds (herd) in Ethiopia, observed in 4 periods.",
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", ("herd", "period")),
    "bacteria": DatasetInfo(
        "bacteria", "MASS (R); Menard et al., H. influenzae in children with otitis media",
        "Presence of H. influenzae (y) in 50 children (ID) at weeks 0-11 under placebo or drug "
        "(trt: drug, drug+, placebo); late = week > 2.",
        "y ~ trt + late + (1 | ID)", "bernoulli", ("ID", "trt", "ap", "hilo")),
    "epil": DatasetInfo(
        "epil", "MASS (R); Thall & Vail (1990), Biometrics 46, 657-671",
        "Seizure counts (y) of 59 epileptics (subject) in four 2-week periods, progabide vs "
        "placebo (trt); lbase, lage are centred log baseline count and log age; V4 = period 4.",
        "y ~ lbase * trt + lage + V4 + (1 | subject)", "poisson", ("trt", "subject")),
    "ohio": DatasetInfo(
        "ohio", "geepack (R); Six Cities study of air pollution (Ware et al. 1984)",
        "Wheeze status (resp) of 537 children (id) at ages 7-10 (age centred at 9), with "
        "maternal smoking (smoke).",
        "resp ~ age + smoke + (1 | id)", "bernoulli", ("id",)),
    "salamander": DatasetInfo(
        "salamander", "lme4 data/salamander.rda; McCullagh & Nelder (1989), Generalized Linear Models, sec. 14.5",
        "Salamander mating experiments: 60 females and 60 males (crossed), Rough Butt (R) and "
        "Whiteside (W) populations; WSf/WSm = female/male is Whiteside; Mate = 1 if they mated.",
        "Mate ~ WSf * WSm + (1 | Female) + (1 | Male)", "bernoulli",
        ("Season", "TypeM", "TypeF", "Cross", "Male", "Female")),
    "milk": DatasetInfo(
        "milk", "nlme Milk (R); Diggle, Liang & Zeger (1994), Analysis of Longitudinal Data",
        "Protein content of milk (protein) of 79 cows (Cow) over weeks (Time) on three diets (Diet).",
        "protein ~ Diet + Time + (1 | Cow)", "gaussian", ("Cow", "Diet")),
    "sleepstudy": DatasetInfo(
        "sleepstudy", "lme4 (R); Belenky et al. (2003), J. Sleep Res. 12, 1-12",
        "Average reaction time (Reaction, ms) of 18 subjects (Subject) over 10 days (Days) of sleep deprivation.",
        "Reaction ~ Days + (Days | Subject)", "gaussian", ("Subject",)),
    "salamander_counts": DatasetInfo(
        "salamander_counts", "glmmTMB (R) Salamanders; Price et al. (2016), Freshwater Science 35, 1311-1321",
        "Counts (count) of 7 salamander species (spp) in repeated surveys (sample) of 23 streams (site) in "
        "Appalachia, some affected by mountaintop mining (mined); cover, DOP, Wtemp, DOY are scaled covariates.",
        "count ~ spp + mined + (1 | site)", "negativebinomial", ("site", "mined", "spp")),
    "gamma_sim": DatasetInfo(
        "gamma_sim", "simulated (bayesglmm/datasets/reference/dispersion.R, seed 20240611)",
        "A positive response y ~ Gamma(shape 2.5, mean exp(1 + 0.3 x - 0.4 [trt = b] + b_g)), b_g ~ N(0, 0.5^2), "
        "40 groups (g) of 4-12 rows; exposure is unused by the model.",
        "y ~ x + trt + (1 | g)", "gamma", ("g", "trt")),
    "nb_offset_sim": DatasetInfo(
        "nb_offset_sim", "simulated (bayesglmm/datasets/reference/dispersion.R, seed 20240612)",
        "Counts y ~ NB2(mean t exp(0.5 + 0.4 x + b_g), theta 1.7), b_g ~ N(0, 0.6^2), 30 groups (g) of 6-10 rows "
        "with exposure t (an offset).",
        "y ~ x + offset(log(t)) + (1 | g)", "negativebinomial", ("g",)),
    "nb_slope_sim": DatasetInfo(
        "nb_slope_sim", "simulated (bayesglmm/datasets/reference/dispersion.R, seed 20240613)",
        "Counts y ~ NB2(mean exp(0.8 + 0.5 x + b0_g + b1_g x), theta 2.5), SDs 0.5 and 0.3, correlation 0.4, "
        "30 groups (g) of 8-12 rows.",
        "y ~ x + (1 + x | g)", "negativebinomial", ("g",)),
}


def list_datasets() -> list[str]:
    """Names of the bundled data sets."""
    return sorted(_DATASETS)


def info(name: str) -> DatasetInfo:
    """Provenance and reference model of a data set."""
    if name not in _DATASETS:
        raise KeyError(f"unknown data set {name!r}; available: {', '.join(list_datasets())}")
    return _DATASETS[name]


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set as a new DataFrame.

    Parameters
    ----------
    name : str
        One of :func:`list_datasets`: cbpp, bacteria, epil, ohio, salamander, milk, sleepstudy; for the
        dispersion families salamander_counts (negative binomial), gamma_sim, nb_offset_sim, nb_slope_sim.

    Returns
    -------
    pandas.DataFrame
        Categorical columns (see :func:`info`) are strings.
    """
    meta = info(name)
    with resources.files(__package__).joinpath("data", f"{name}.csv").open("r") as fh:
        frame = pd.read_csv(fh, dtype={c: str for c in meta.categorical})
    return frame


def from_r_label(label: str, categorical=()) -> str:
    """An R coefficient label in bayesglmm's spelling: ``period2`` → ``period[2]``,
    ``lbase:trtprogabide`` → ``lbase:trt[progabide]`` (a term of a categorical column)."""
    parts = []
    for part in label.split(":"):
        col = next((c for c in sorted(categorical, key=len, reverse=True)
                    if part.startswith(c) and len(part) > len(c)), None)
        parts.append(f"{col}[{part[len(col):]}]" if col else part)
    return ":".join(parts)


def _read_json(name: str) -> dict:
    with resources.files(__package__).joinpath("reference", f"{name}.json").open("r") as fh:
        return json.load(fh)


def reference(name: str) -> dict:
    """The R reference fits of a bundled data set's model, in bayesglmm's labels.

    Returns
    -------
    dict
        ``formula``, ``family``, ``link``, ``nobs``, ``produced_by`` (the R script and package
        versions) and one entry per R method (``glmer_laplace``, ``glmer_agq25``,
        ``glmer_nagq0``, ``glmmtmb``, ``glmmpql``, ``glmmpql_sigma1``, ``gee_exch``,
        ``lmer_reml``, ``lmer_ml``, where they were fitted), each with ``r_call``, ``fixef``
        and ``se`` (or GEE's ``coef``, ``robust_se``, ``alpha``) keyed by bayesglmm's term
        labels, ``sd`` keyed by ``(group, term)`` (the Gaussian residual as
        ``("Residual", "Residual")``; PQL's estimated dispersion as ``residual``), ``corr``
        keyed by ``(group, term, term2)``, ``loglik`` (``loglik_full`` for nAGQ > 1, on the
        Laplace scale) and ``seconds`` (machine-dependent: compare ratios measured in one run).
    """
    meta = info(name)
    try:
        raw = _read_json(name)
    except FileNotFoundError:
        raise KeyError(f"data set {name!r} has no reference file of its own: the dispersion families' R fits of it "
                       "are in dispersion_reference()") from None
    out = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    for method, fit in raw.items():
        if not isinstance(fit, dict):
            continue
        entry = {k: v for k, v in fit.items() if k != "vc_sd"}
        for key in ("fixef", "se", "coef", "robust_se"):
            if key in fit:
                entry[key] = {from_r_label(t, meta.categorical): v for t, v in fit[key].items()}
        sd, corr = {}, {}
        groups = [b.split("|")[1].strip(" )") for b in meta.formula.split("(")[1:] if "|" in b]
        for key, v in fit.get("vc_sd", {}).items():
            if method.startswith("glmmpql"):  # nlme's VarCorr rows: the one group's term, and Residual
                if key == "Residual":
                    entry["residual"] = v
                else:
                    sd[(groups[0], key)] = v
            elif method == "glmmtmb":  # "herd.(Intercept)"
                g, t = key.split(".", 1)
                sd[(g, t)] = v
            else:  # lme4's "grp|var1|var2"
                g, t1, t2 = key.split("|")
                if g == "Residual":
                    sd[("Residual", "Residual")] = v
                elif t2:
                    corr[(g, t1, t2)] = v
                else:
                    sd[(g, t1)] = v
        entry["sd"], entry["corr"] = sd, corr
        out[method] = entry
    return out


def profile_reference() -> dict:
    """lme4's profile-likelihood intervals of the SDs, ``{(dataset, method): {(group, term): (low, high)}}``,
    with ``r_call`` per entry in the JSON (``reference/profiles.json``)."""
    raw = _read_json("profiles")
    out = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        dataset = key.split("_")[0]
        out[(dataset, entry["method"])] = {tuple(k.split("|")): tuple(v) for k, v in entry["intervals"].items()}
    return out


def dispersion_reference() -> dict:
    """glmmTMB's (and glmer.nb's, glmmPQL's, geeglm's) fits of the dispersion families
    (``reference/dispersion.json``, written by ``dispersion.R`` beside it), ``{case: entry}``.

    Each entry holds ``r_call``, ``formula`` (bayesglmm's spelling), ``family``, ``link``, R's ``fixef`` and
    ``se`` (R's coefficient labels: :func:`from_r_label`), ``varcorr``, ``theta`` or ``shape`` (this package's
    dispersion; glmmTMB's ``sigma``), ``loglik``, ``profile_ci``, ``predictions`` of ``newdata`` and, where
    computed, ``loglik_integrated`` (the exact marginal log-likelihood at glmmTMB's estimates); a ``note``
    where part of it is not a reference."""
    raw = _read_json("dispersion")
    return {k: v for k, v in raw.items() if isinstance(v, dict)}


def prediction_reference() -> dict:
    """glmmTMB's predictions with standard errors (``reference/predictions.json``, written by
    ``predictions.R`` beside it), ``{case: entry}`` for ``cbpp_laplace``, ``sleepstudy_ml``,
    ``sleepstudy_reml`` and ``epil_offset_laplace``.

    Each entry holds ``r_call``, ``predict_call``, ``formula`` (bayesglmm's spelling), glmmTMB's
    ``fixef``, ``se`` and ``loglik``, the ``newdata`` rows (a dict of columns), and for ``"fitting"``
    (the fitting rows) and ``"new"`` (``newdata``, new levels among them) the ``fit`` and ``se`` of
    ``{link, response}_{population, conditional}`` (``re.form = NA`` / ``NULL``); a ``note`` where
    part of it is not a reference."""
    raw = _read_json("predictions")
    return {k: v for k, v in raw.items() if isinstance(v, dict)}
