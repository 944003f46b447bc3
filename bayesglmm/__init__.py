"""bayesglmm: generalized linear mixed models, Bayesian first, built on PyMC.

>>> import bayesglmm as bg
>>> model = bg.GLMM("Mate ~ WSf * WSm + (1 | Female) + (1 | Male)",
...                 data=bg.datasets.load("salamander"), family="bernoulli")
>>> post = model.sample(draws=1000, chains=4, random_seed=1)   # doctest: +SKIP
>>> post.fixed_effects()                                        # doctest: +SKIP
"""

from . import datasets, plots, priors
from .compare import Comparison, compare
from .design import Design, RandomBlock, make_design
from .families import Family, Link, get_family
from .formula import FormulaError, parse_formula
from .frequentist.fit import ConvergenceWarning, SeparationWarning
from .results import CentringWarning
from .frequentist.lrt import lrt
from .glmm import GLMM
from .interop import from_bambi
from .io import load, save
from .ranking import rank_levels
from .simulate import bootstrap_lrt, simulation_study
from .sensitivity import prior_sensitivity
from .teaching import naive_vs_clustered, pooling

from .version import __version__
__all__ = ["GLMM", "Design", "RandomBlock", "make_design", "Family", "Link", "get_family",
           "FormulaError", "parse_formula", "datasets", "priors", "plots", "lrt",
           "compare", "Comparison", "rank_levels", "from_bambi", "save", "load",
           "ConvergenceWarning", "SeparationWarning", "CentringWarning", "simulation_study", "bootstrap_lrt", "pooling", "naive_vs_clustered", "prior_sensitivity", "__version__"]
