"""Saving and loading results: a posterior, an ML/PQL fit or a GEE fit, with its model.

:func:`save` writes one gzip-compressed pickle holding the result and its
:class:`~bayesglmm.GLMM` (formula, family, link, priors and the rows of data used), so
:func:`load` gives back an object whose tables, draws and predictions are the ones
saved. The compiled PyMC model is not stored; it is rebuilt when first needed.

Like every pickle, a file can run code when loaded: load only files you trust.
A file records the bayesglmm version that wrote it; loading with another version
warns, since the classes may have changed. A file that cannot be given back as a result
(damaged, foreign, incomplete, or naming classes this version lacks) is a :class:`LoadError`,
a ``ValueError`` naming the path and what is wrong.
"""

from __future__ import annotations

import gzip
import pickle
import warnings
import zlib
from pathlib import Path

__all__ = ["save", "load", "LoadError"]

_FORMAT = "bayesglmm-result"


class LoadError(ValueError):
    """A file that :func:`load` cannot give back as a result: not a bayesglmm result file,
    damaged, incomplete, holding something else, or written with classes this version lacks.
    The message names the path and what is wrong."""


def _result_types():
    from .bayes.posterior import Posterior
    from .frequentist.fit import MLFit
    from .frequentist.gee import GEEFit

    return Posterior, MLFit, GEEFit


def save(result, path) -> Path:
    """Write ``result`` (Posterior, MLFit or GEEFit) to ``path``; returns the path.

    Raises
    ------
    TypeError
        If ``result`` is not a bayesglmm result.
    """
    from . import __version__

    if not isinstance(result, _result_types()):
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
    LoadError
        A ``ValueError`` naming the path and what is wrong: not a bayesglmm result file (not
        gzip, not a pickle, another pickle), damaged (corrupt or truncated), without the entries
        :func:`save` writes, holding something other than a result, or holding classes this
        version of bayesglmm does not have (load it with the version that wrote it).
    """
    from . import __version__

    path = Path(path)
    where = repr(str(path))
    if not path.exists():
        raise FileNotFoundError(f"no such file: {where}")
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()  # to the end, so that gzip checks its CRC and length
        payload = pickle.loads(raw)
    except (zlib.error, EOFError, gzip.BadGzipFile) as err:
        if not gzipped:
            raise LoadError(f"{where} is not a bayesglmm result file (not gzip-compressed: {err})") from None
        raise LoadError(f"{where} is damaged: its compressed data are corrupt or cut short ({err}); "
                        "save the result again") from None
    except (ImportError, AttributeError) as err:  # a module or class the file names is not in this version
        raise LoadError(f"{where} cannot be loaded by bayesglmm {__version__}: it holds a class this version does not "
                        f"have ({err}); load it with the bayesglmm version that wrote it") from None
    except (OSError, pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError) as err:
        raise LoadError(f"{where} is not a bayesglmm result file ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise LoadError(f"{where} is not a bayesglmm result file (no bayesglmm header: written by something other "
                        "than bg.save)")
    missing = [k for k in ("version", "kind", "result") if k not in payload]
    if missing:
        raise LoadError(f"{where} is an incomplete bayesglmm result file: it lacks {', '.join(map(repr, missing))}")
    result = payload["result"]
    if not isinstance(result, _result_types()) or type(result).__name__ != payload["kind"]:
        raise LoadError(f"{where} holds a {type(result).__name__} where its header says {payload['kind']!r}: not a "
                        "Posterior, MLFit or GEEFit written by bg.save")
    if payload["version"] != __version__:
        warnings.warn(f"{where} was written by bayesglmm {payload['version']}, this is {__version__}",
                      UserWarning, stacklevel=2)
    return result
