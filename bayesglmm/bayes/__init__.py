"""The Bayesian side: Design + family + priors → PyMC model → NUTS → :class:`Posterior`."""

from .compilation import CompileCount, count_compilations
from .model import build_pymc_model, inverse_link, linear_predictor
from .posterior import Posterior, SamplingWarning, sample_model, summarize_draws

__all__ = ["CompileCount", "count_compilations", "build_pymc_model", "inverse_link", "linear_predictor", "Posterior", "SamplingWarning",
           "sample_model", "summarize_draws"]
