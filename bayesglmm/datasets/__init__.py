"""Real data sets bundled with the package (nothing is downloaded).

Each entry records its source, what its columns mean, the reference model fitted
to it in R (``tests/reference/*.json`` hold those fits), and which columns are
categorical. :func:`load` returns a fresh :class:`pandas.DataFrame`; categorical
columns are strings, so their levels sort alphabetically as in the R references.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import pandas as pd

__all__ = ["load", "list_datasets", "info", "DatasetInfo"]


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
        One of :func:`list_datasets`: cbpp, bacteria, epil, ohio, salamander, milk, sleepstudy.

    Returns
    -------
    pandas.DataFrame
        Categorical columns (see :func:`info`) are strings.
    """
    meta = info(name)
    with resources.files(__package__).joinpath("data", f"{name}.csv").open("r") as fh:
        frame = pd.read_csv(fh, dtype={c: str for c in meta.categorical})
    return frame
