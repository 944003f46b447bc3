"""The frequentist side on the same :class:`~bayesglmm.Design`.

Implemented so far: ``"laplace"`` (ML by the Laplace approximation, any random-effect
structure, non-Gaussian families). See :mod:`bayesglmm.frequentist.laplace`.
"""

from .fit import METHODS, MLFit, fit
from .laplace import fit_laplace, laplace_deviance, pirls

__all__ = ["METHODS", "MLFit", "fit", "fit_laplace", "laplace_deviance", "pirls"]
