"""Saving and loading results: a posterior, an ML/PQL fit or a GEE fit, with its model.

:func:`save` writes one gzip-compressed pickle holding the result and its
:class:`~bayesglmm.GLMM` (formula, family, link, priors and the rows of data used), so
:func:`load` gives back an object whose tables, draws and predictions are the ones
saved. The compiled PyMC model is not stored; it is rebuilt when first needed.

Like every pickle, a file can run code when loaded: load only files you trust.
A file records the bayesglmm version that wrote it; loading with another version
warns, since the classes may have changed.
"""

from __future__ import annotations

import gzip
import pickle
import warnings
from pathlib import Path

__all__ = ["save", "load"]

_FORMAT = "bayesglmm-result"


def save(result, path) -> Path:
    """Write ``result`` (Posterior, MLFit or GEEFit) to ``path``; returns the path.

    Raises
    ------
    TypeError
        If ``result`` is not a bayesglmm result.
    """
    from . import __version__
    from .bayes.posterior import Posterior
    from .frequentist.fit import MLFit
    from .frequentist.gee import GEEFit

    if not isinstance(result, (Posterior, MLFit, GEEFit)):
        raise TypeError(f"save() takes a Posterior, MLFit or GEEFit, got {type(result).__name__}")
    path = Path(path)
    payload = {"format": _FORMAT, "version": __version__, "kind": type(result).__name__, "result": result}
    with gzip.open(path, "wb") as fh:
        pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def load(path):
    """Read a result written by :func:`save`.

    Raises
    ------
    FileNotFoundError
    ValueError
        If the file is not a bayesglmm result.
    """
    from . import __version__

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    try:
        with gzip.open(path, "rb") as fh:
            payload = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError) as err:
        raise ValueError(f"{str(path)!r} is not a bayesglmm result file ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} is not a bayesglmm result file")
    if payload["version"] != __version__:
        warnings.warn(f"{str(path)!r} was written by bayesglmm {payload['version']}, this is {__version__}",
                      UserWarning, stacklevel=2)
    return payload["result"]
