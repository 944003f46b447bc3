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
from .report import display_table
from .frequentist.lrt import compare_models, lrt
from .glmm import GLMM
from .interop import from_bambi
from .io import load, save
from .ranking import rank_levels
from .simulate import bootstrap_lrt, simulation_study
from .sensitivity import prior_sensitivity
from .teaching import naive_vs_clustered, pooling

from .version import __version__


def loo_compare(posteriors: dict, by: str = "observation", reloo: bool = True, **kwargs):
    """Posteriors of one response compared by leave-one-out ELPD (PSIS, :meth:`Posterior.loo
    <bayesglmm.bayes.posterior.Posterior.loo>` of each): ArviZ's ``compare`` table (``elpd``, ``se``,
    ``elpd_diff`` to the best and its SE ``dse``, ``p``, ``weight``), best first; ``by`` a grouping factor
    to leave one group out (each group's marginal likelihood). Refuses posteriors of different data, or
    grouped differently by ``by``. ``bg.plots.elpd_comparison(table)`` plots it; ``table.attrs["loo"]``
    holds each model's ELPD result. Keyword arguments go to :meth:`Posterior.loo` (``k_threshold``,
    ``random_seed``, ``progress``)."""
    from .bayes.loo import loo_compare as _loo_compare

    return _loo_compare(posteriors, by=by, reloo=reloo, **kwargs)
__all__ = ["GLMM", "Design", "RandomBlock", "make_design", "Family", "Link", "get_family",
           "FormulaError", "parse_formula", "datasets", "priors", "plots", "lrt",
           "compare", "Comparison", "rank_levels", "from_bambi", "save", "load",
           "ConvergenceWarning", "SeparationWarning", "CentringWarning", "simulation_study", "bootstrap_lrt", "pooling", "naive_vs_clustered", "prior_sensitivity", "compare_models", "loo_compare", "display_table", "__version__"]
