"""The frequentist side on the same :class:`~bayesglmm.Design`.

Implemented so far, for Bernoulli, binomial and Poisson families: ``"laplace"`` (ML by the
Laplace approximation, any random-effect structure; :mod:`bayesglmm.frequentist.laplace`)
and ``"agq"`` (adaptive Gauss–Hermite quadrature for one grouping factor with one or more
terms; :mod:`bayesglmm.frequentist.agq`) and ``"pql"`` (Breslow–Clayton PQL as
MASS::glmmPQL; :mod:`bayesglmm.frequentist.pql`) and ``"gee"`` (the population-averaged
model by statsmodels GEE; :mod:`bayesglmm.frequentist.gee`); for Gaussian models ``"ml"``
and ``"reml"`` (:mod:`bayesglmm.frequentist.lmm`), which ``"laplace"``, ``"agq"`` and
``"pql"`` also give for such models (they are exact there). Profile-likelihood intervals
for SDs and correlations: :mod:`bayesglmm.frequentist.profile`. Each likelihood method's objective as a function
(``model.deviance(method)``): :mod:`bayesglmm.frequentist.deviance`.
"""

from .fit import METHODS, MLFit, PQLFit, fit
from .deviance import Deviance
from .agq import agq_loglik
from .laplace import EngineResult, fit_laplace, laplace_deviance, pirls
from .pql import fit_pql
from .working_lmm import working_lmm_deviance

__all__ = ["METHODS", "Deviance", "EngineResult", "MLFit", "PQLFit", "fit", "agq_loglik", "fit_laplace", "fit_pql", "laplace_deviance", "pirls",
           "working_lmm_deviance"]
