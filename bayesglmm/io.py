"""Saving and loading results as data: one NetCDF4 file that ArviZ and xarray open, and that runs
nothing when loaded.

:func:`save` writes a posterior, an ML/PQL fit or a GEE fit with its model into one NetCDF4 file
(an HDF5 file, through :meth:`xarray.DataTree.to_netcdf`), whose groups are

==========================  ==================================================================
``/`` (attributes)          ``bayesglmm_format``, ``format_version``, ``bayesglmm_version``,
                            ``kind`` (``Posterior``, ``MLFit``, ``PQLFit`` or ``GEEFit``)
``/posterior`` …            a posterior's groups as ArviZ names them (``posterior``,
                            ``sample_stats``, ``observed_data``, ``log_likelihood``, …)
``/bayesglmm_model``        the model as data: formula, family, link, ``missing``, the priors
                            given (class names and parameters, as JSON text), and the rows of data
                            used, a variable per column (its name and pandas dtype in attributes)
``/bayesglmm_fit``          an ML/PQL/GEE fit's estimates: β and its covariance, θ and the
                            covariance of (θ, β), the conditional modes and the diagonal blocks
                            of their curvature's inverse, the internal estimates profiles start
                            from, log-likelihood, convergence, flags, the quadrature's nodes
                            and their last change (``nagq``, ``nagq_change``)
==========================  ==================================================================

``xarray.open_datatree(path)`` opens it without bayesglmm, and ``arviz.summary`` summarizes a
posterior's file directly. :func:`load` rebuilds the result from these data only: no pickle, no
``eval``; prior classes come from a fixed table of the allowed ones and the formula is parsed as
any formula, so loading a file from someone else cannot run code. NetCDF4 over Zarr: the same size
and read time (docs/performance.md, "Measurements behind the design"), one file that every NetCDF
tool (R's ncdf4, ncdump) reads, and what ArviZ writes.

Files written before format version 1 are gzip-compressed pickles: :func:`load` still reads them
through a clearly labelled legacy reader (with a ``FutureWarning`` saying how to re-save them as
data), for one release. Like any pickle, such a file can run code: load only legacy files you trust.
"""

from __future__ import annotations

import gzip
import json
import math
import warnings
from dataclasses import replace
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .version import __version__

__all__ = ["save", "load", "LoadError", "FORMAT_VERSION"]

_FORMAT = "bayesglmm-result"
#: the version of the file layout this bayesglmm writes; a file of a newer one is refused
FORMAT_VERSION = 1
_HDF5 = b"\x89HDF\r\n\x1a\n"
_MODEL, _FIT = "bayesglmm_model", "bayesglmm_fit"
_KINDS = ("Posterior", "MLFit", "PQLFit", "GEEFit")
_ENGINE = "h5netcdf"


class LoadError(ValueError):
    """A file that :func:`load` cannot give back as a result: not a bayesglmm result file,
    damaged, incomplete, of a newer format, or naming a class outside the allowed set.
    The message names the path and what is wrong."""


def _result_types():
    from .bayes.posterior import Posterior
    from .frequentist.fit import MLFit
    from .frequentist.gee import GEEFit

    return Posterior, MLFit, GEEFit


# ---------------------------------------------------------------------------- save
def save(result, path) -> Path:
    """Write ``result`` (Posterior, MLFit, PQLFit or GEEFit) and its model to ``path`` as one
    NetCDF4 file (see the module docstring; ``.nc`` is the usual suffix); returns the path.

    Raises
    ------
    TypeError
        If ``result`` is not a bayesglmm result.
    """
    import xarray as xr

    if not isinstance(result, _result_types()):
        raise TypeError(f"save() takes a Posterior, MLFit or GEEFit, got {type(result).__name__}")
    path = Path(path)
    kind = type(result).__name__
    groups = {_MODEL: _model_dataset(result.model)}
    if kind == "Posterior":
        for name, child in result.idata.children.items():
            groups[name] = _clean(child.to_dataset())
    else:
        groups[_FIT] = _fit_dataset(result)
    tree = xr.DataTree.from_dict(groups)
    tree.attrs = {"bayesglmm_format": _FORMAT, "format_version": FORMAT_VERSION, "bayesglmm_version": __version__,
                  "kind": kind}
    tree.to_netcdf(path, engine=_ENGINE)
    return path


def _clean(ds):
    """A dataset whose attributes NetCDF can hold (numbers, text, lists of them); others as text."""
    def ok(v):
        if isinstance(v, (str, int, float, np.integer, np.floating)):
            return True
        if isinstance(v, (list, tuple, np.ndarray)):
            return all(isinstance(x, (int, float, np.integer, np.floating)) for x in np.ravel(v)) or \
                all(isinstance(x, str) for x in np.ravel(v))
        return False

    ds = ds.copy()
    ds.attrs = {k: (v if ok(v) else str(v)) for k, v in ds.attrs.items() if v is not None}
    for var in ds.variables.values():
        var.attrs = {k: (v if ok(v) else str(v)) for k, v in var.attrs.items() if v is not None}
    return ds


def _prior_record(prior) -> dict:
    """A prior as JSON-able data: its class name and parameters (a CenteredIntercept its inner one)."""
    from .priors import CenteredIntercept

    if isinstance(prior, CenteredIntercept):
        return {"class": "CenteredIntercept", "prior": _prior_record(prior.prior)}
    return {"class": type(prior).__name__, "params": {k: float(v) for k, v in prior.params.items()}}


def _model_dataset(model):
    design = model.design
    ds = _frame_dataset(design.data)
    ds.attrs = {"formula": model.formula, "family": model.family.name, "link": model.family.link.name,
                "missing": model.missing, "n_dropped": int(design.n_dropped),
                "priors": json.dumps({k: _prior_record(p) for k, p in model.prior_overrides.items()})}
    return ds


def _frame_dataset(frame: pd.DataFrame):
    """The rows of data as a dataset: ``column_{i}`` per column (dim ``row``) with attributes ``name``
    and ``pandas_dtype`` (a Categorical also its ``categories``, as JSON), and the index as ``row``."""
    import xarray as xr

    variables = {}
    for i, name in enumerate(frame.columns):
        col = frame.iloc[:, i]
        attrs = {"name": json.dumps(_plain([name])[0]), "pandas_dtype": str(col.dtype)}
        if isinstance(col.dtype, pd.CategoricalDtype):
            attrs["categories"] = json.dumps(_plain(list(col.cat.categories)))
            attrs["ordered"] = int(col.cat.ordered)
            values = col.cat.codes.to_numpy(dtype=np.int64)
        elif pd.api.types.is_bool_dtype(col.dtype) and col.isna().any():
            values = col.astype(float).to_numpy(dtype=float, na_value=np.nan)
        elif pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            # a nullable integer with missing values as floats with NaN (its dtype restores it)
            values = col.to_numpy(dtype=float, na_value=np.nan) if col.isna().any() else col.to_numpy()
        elif pd.api.types.is_bool_dtype(col.dtype):
            values = col.to_numpy(dtype=bool)
        elif pd.api.types.is_datetime64_any_dtype(col.dtype) or pd.api.types.is_timedelta64_dtype(col.dtype):
            values = col.to_numpy()
        else:  # strings (pandas' Arrow-backed str, object): text; missing values recorded apart
            attrs["missing"] = json.dumps(np.flatnonzero(col.isna().to_numpy()).tolist())
            values = np.asarray(["" if pd.isna(v) else str(v) for v in col.to_numpy(dtype=object)], dtype=object)
        if values.dtype == object:
            values = values.astype(str)
        variables[f"column_{i}"] = xr.Variable("row", values, attrs=attrs)
    index = frame.index
    name = {"index_name": json.dumps(_plain([index.name])[0])}
    if isinstance(index, pd.RangeIndex):
        row = xr.Variable("row", np.arange(len(frame)), attrs={"range": json.dumps([index.start, index.step]), **name})
    else:
        values = index.to_numpy()
        row = xr.Variable("row", values.astype(str) if values.dtype == object else values,
                          attrs={"pandas_dtype": str(index.dtype), **name})
    return xr.Dataset(variables, coords={"row": row})


def _plain(values) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _flags_variables(flags) -> dict:
    import xarray as xr

    return {"flag_kind": xr.Variable("flag", np.asarray([f.kind for f in flags], dtype=str).astype(object)),
            "flag_message": xr.Variable("flag", np.asarray([f.message for f in flags], dtype=str).astype(object))}


def _fit_dataset(fit):
    import xarray as xr

    design = fit.model.design
    fixed = list(design.fixed_names)
    v = {"beta": xr.Variable("fixed", np.asarray(fit.beta, dtype=float)),
         "vcov_beta": xr.Variable(("fixed", "fixed_bis"), np.asarray(fit.vcov, dtype=float))}
    attrs = {"method": fit.method, "seconds": float(fit.seconds), "converged": int(fit.converged),
             "blas_threads": -1 if fit.blas_threads is None else int(fit.blas_threads)}
    v.update(_flags_variables(fit.flags))
    if fit.method == "gee":
        attrs.update(alpha=float(fit.alpha), correlation=fit.correlation)
        return xr.Dataset(v, coords={"fixed": fixed, "fixed_bis": fixed}, attrs=attrs)
    internal = fit._internal
    v.update(theta=xr.Variable("theta", np.asarray(fit.theta, dtype=float)),
             internal_theta=xr.Variable("theta", np.asarray(internal.theta, dtype=float)),
             internal_beta=xr.Variable("fixed", np.asarray(internal.beta, dtype=float)),
             u=xr.Variable("u", np.asarray(fit._state.u, dtype=float)))
    if fit.vcov_full is not None:
        v["vcov_full"] = xr.Variable(("param", "param_bis"), np.asarray(fit.vcov_full, dtype=float))
    if internal.vcov_full is not None:
        v["internal_vcov_full"] = xr.Variable(("param", "param_bis"), np.asarray(internal.vcov_full, dtype=float))
    blocks = design.random
    inverse = fit._state.factor.inverse_blocks([(b.n_levels, b.n_terms) for b in blocks])
    for k, (block, inv) in enumerate(zip(blocks, inverse)):
        v[f"curvature_inverse_{k}"] = xr.Variable((f"level_{k}", f"term_{k}", f"term_bis_{k}"), inv)
    attrs.update(nagq=int(fit.nagq), nagq_change=float("nan" if fit.nagq_change is None else fit.nagq_change),
                 message=str(fit.message), n_eval=int(fit.n_eval),
                 decrement=float(fit.decrement), loglik=float(getattr(fit, "loglik", np.nan)),
                 dispersion_estimated=int(fit.dispersion is not None and not fit.model.family.has_dispersion),
                 family_dispersion=float(fit.dispersion if fit.model.family.has_dispersion and fit.dispersion is not None
                                         else np.nan),
                 sigma=float(np.nan if fit._internal.sigma is None else fit._scaling.y_scale * fit._internal.sigma),
                 internal_sigma=float(np.nan if internal.sigma is None else internal.sigma),
                 state_converged=int(fit._state.converged))
    return xr.Dataset(v, coords={"fixed": fixed, "fixed_bis": fixed}, attrs=attrs)


# ---------------------------------------------------------------------------- load
def load(path):
    """Read a result written by :func:`save`: a :class:`~bayesglmm.bayes.posterior.Posterior`,
    :class:`~bayesglmm.frequentist.fit.MLFit`/``PQLFit`` or
    :class:`~bayesglmm.frequentist.gee.GEEFit` with its model, rebuilt from the file's data only.

    A file of the earlier pickle format is read by :func:`load_legacy`, with a ``FutureWarning``.

    Raises
    ------
    FileNotFoundError
    LoadError
        A ``ValueError`` naming the path and what is wrong: not a bayesglmm result file, damaged,
        incomplete, written in a newer format version (named), or naming a prior class or result
        kind outside the allowed set.
    """
    path = Path(path)
    where = repr(str(path))
    if not path.exists():
        raise FileNotFoundError(f"no such file: {where}")
    if path.is_dir():
        raise LoadError(f"{where} is a directory, not a file that bg.save wrote")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:2] == b"\x1f\x8b":
        return load_legacy(path)
    if head != _HDF5:
        raise LoadError(f"{where} is not a bayesglmm result file (neither the NetCDF4 file bg.save writes nor "
                        "its earlier gzip format)")
    import xarray as xr

    try:
        with xr.open_datatree(path, engine=_ENGINE) as opened:
            tree = opened.load()
    except Exception as err:  # noqa: BLE001 - h5py/xarray raise many kinds; all say the file is unreadable
        raise LoadError(f"{where} is damaged or not a bayesglmm result file: it cannot be read as NetCDF4 "
                        f"({type(err).__name__}: {err})") from None
    return _from_tree(tree, where)


def _from_tree(tree, where: str):
    attrs = tree.attrs
    if attrs.get("bayesglmm_format") != _FORMAT:
        raise LoadError(f"{where} is not a bayesglmm result file (a NetCDF4 file without bayesglmm's header)")
    version = attrs.get("format_version")
    if not isinstance(version, (int, np.integer)):
        raise LoadError(f"{where} is an incomplete bayesglmm result file: it lacks its format version")
    if version > FORMAT_VERSION:
        raise LoadError(f"{where} is in bayesglmm's file format version {int(version)}, newer than this bayesglmm "
                        f"{__version__} reads (version {FORMAT_VERSION}): load it with a newer bayesglmm")
    kind = attrs.get("kind")
    if kind not in _KINDS:
        raise LoadError(f"{where} says it holds a {kind!r}; bg.load gives back only {', '.join(_KINDS)}")
    if _MODEL not in tree.children:
        raise LoadError(f"{where} is an incomplete bayesglmm result file: it lacks the group {_MODEL!r}")
    try:
        model = _model_from(tree[_MODEL].to_dataset(), where)
        if kind == "Posterior":
            return _posterior_from(tree, model)
        if _FIT not in tree.children:
            raise LoadError(f"{where} is an incomplete bayesglmm result file: it lacks the group {_FIT!r}")
        fit = tree[_FIT].to_dataset()
        return _gee_from(fit, model) if kind == "GEEFit" else _ml_from(fit, model, kind)
    except (KeyError, IndexError, TypeError) as err:
        raise LoadError(f"{where} is an incomplete or altered bayesglmm result file ({type(err).__name__}: "
                        f"{err})") from None


#: the prior classes a file may name: plain descriptions, rebuilt by keyword arguments
def _allowed_priors() -> dict:
    from . import priors as P

    return {c.__name__: c for c in (P.Normal, P.StudentT, P.HalfNormal, P.HalfStudentT, P.HalfCauchy,
                                    P.Exponential, P.Uniform, P.InverseGamma, P.LKJ)}


def _prior_from(record, where: str):
    from .priors import CenteredIntercept

    if not isinstance(record, dict) or not isinstance(record.get("class"), str):
        raise LoadError(f"{where}: a prior of the model is not a {{class, params}} record: {record!r}")
    name = record["class"]
    if name == "CenteredIntercept":
        return CenteredIntercept(_prior_from(record.get("prior"), where))
    allowed = _allowed_priors()
    if name not in allowed:
        raise LoadError(f"{where} names the prior class {name!r}, which is not one bg.load rebuilds (allowed: "
                        f"CenteredIntercept, {', '.join(allowed)}): the file was altered or is not bayesglmm's")
    params = record.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, (int, float)) for v in params.values()):
        raise LoadError(f"{where}: the parameters of a {name} prior are not numbers: {params!r}")
    try:
        return allowed[name](**params)
    except (TypeError, ValueError) as err:
        raise LoadError(f"{where}: the {name} prior cannot be rebuilt from {params!r} ({err})") from None


def _frame_from(ds) -> pd.DataFrame:
    columns = {}
    names = []
    for key in sorted((k for k in ds.data_vars if k.startswith("column_")), key=lambda k: int(k.split("_")[1])):
        var = ds[key]
        dtype = var.attrs.get("pandas_dtype", "")
        values = var.values
        if "categories" in var.attrs:
            cats = json.loads(var.attrs["categories"])
            col = pd.Categorical.from_codes(values.astype(np.int64), categories=cats,
                                            ordered=bool(var.attrs.get("ordered", 0)))
            col = pd.Series(col)
        elif "missing" in var.attrs:
            missing = json.loads(var.attrs["missing"])
            obj = np.asarray(values, dtype=object)
            obj[missing] = None
            col = pd.Series(obj, dtype=dtype if dtype in ("str", "string", "object") else "object")
            if dtype not in ("str", "string", "object"):
                col = col.astype(object)
        else:
            col = pd.Series(values)
            if dtype and dtype != str(col.dtype):
                try:
                    col = col.astype(dtype)
                except (TypeError, ValueError):
                    pass
        columns[len(names)] = col.reset_index(drop=True)
        names.append(json.loads(var.attrs["name"]))
    frame = pd.concat([columns[i].rename(i) for i in range(len(names))], axis=1) if names else pd.DataFrame()
    frame.columns = names
    row = ds["row"]
    if "range" in row.attrs:
        start, step = json.loads(row.attrs["range"])
        frame.index = pd.RangeIndex(start, start + step * len(frame), step)
    else:
        index = pd.Index(row.values)
        dtype = row.attrs.get("pandas_dtype")
        if dtype and dtype != str(index.dtype):
            try:
                index = index.astype(dtype)
            except (TypeError, ValueError):
                pass
        frame.index = index
    frame.index.name = json.loads(row.attrs.get("index_name", "null"))
    return frame


def _model_from(ds, where: str):
    from dataclasses import replace

    from .glmm import GLMM

    a = ds.attrs
    try:
        priors = {k: _prior_from(r, where) for k, r in json.loads(a["priors"]).items()}
    except json.JSONDecodeError as err:
        raise LoadError(f"{where}: the model's priors are not readable ({err})") from None
    data = _frame_from(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rows were checked when the model was made
        model = GLMM(str(a["formula"]), data, family=str(a["family"]), link=str(a["link"]), priors=priors,
                     missing=str(a["missing"]))
    model.design = replace(model.design, n_dropped=int(a.get("n_dropped", 0)))
    return model


def _posterior_from(tree, model):
    import xarray as xr

    from .bayes.posterior import Posterior

    groups = {name: child.to_dataset() for name, child in tree.children.items() if name not in (_MODEL, _FIT)}
    if "posterior" not in groups:
        raise KeyError("the group 'posterior'")
    return Posterior(model, xr.DataTree.from_dict(groups))


def _flags_from(ds) -> list:
    from .results import FLAG_KINDS, Flag

    kinds = [str(k) for k in ds["flag_kind"].values] if "flag_kind" in ds else []
    messages = [str(m) for m in ds["flag_message"].values] if "flag_message" in ds else []
    return [Flag(k, m) for k, m in zip(kinds, messages) if k in FLAG_KINDS]


def _gee_from(ds, model):
    from .frequentist.gee import GEEFit

    a = ds.attrs
    fit = GEEFit(model, ds["beta"].values, ds["vcov_beta"].values, float(a["alpha"]), str(a["correlation"]),
                 bool(a["converged"]), float(a["seconds"]))
    fit.flags = _flags_from(ds)
    fit.blas_threads = None if int(a.get("blas_threads", 1)) < 0 else int(a.get("blas_threads", 1))
    return fit


class StoredCurvature:
    """The diagonal blocks of (ΛᵀZᵀWZΛ + I)⁻¹ a saved fit kept: what its random-effect SEs need
    (:meth:`~bayesglmm.frequentist.fit.MLFit.random_effects`), without the factorization (no
    ``solve``: refit the model for that)."""

    kind = "stored"

    def __init__(self, blocks):
        self.blocks = [np.asarray(b, dtype=float) for b in blocks]
        self.logdet = float("nan")

    def inverse_blocks(self, sizes) -> list[np.ndarray]:
        return self.blocks


def _ml_from(ds, model, kind: str):
    from .frequentist.fit import MLFit, PQLFit
    from .frequentist.laplace import EngineResult, LaplaceState, ThetaMap
    from .scaling import scale_design

    a = ds.attrs
    scaling = scale_design(model.design, model.family)
    blocks = [ds[f"curvature_inverse_{k}"].values for k in range(len(model.design.random))]
    state = LaplaceState(u=ds["u"].values, eta=np.full(model.design.nobs, np.nan), loglik_cond=np.nan,
                         logdet=np.nan, factor=StoredCurvature(blocks), converged=bool(a["state_converged"]))
    internal_sigma = float(a["internal_sigma"])
    internal = EngineResult(theta=ds["internal_theta"].values, beta=ds["internal_beta"].values, vcov_beta=None,
                            loglik=np.nan, state=None, tmap=ThetaMap(scaling.design), converged=bool(a["converged"]),
                            message="", n_eval=0, sigma=None if math.isnan(internal_sigma) else internal_sigma,
                            vcov_full=ds["internal_vcov_full"].values if "internal_vcov_full" in ds else None)
    sigma = float(a["sigma"])
    family_dispersion = float(a.get("family_dispersion", np.nan))  # θ or the shape (NaN: none)
    if not math.isnan(family_dispersion):
        internal = replace(internal, dispersion=family_dispersion)
    raw = EngineResult(theta=ds["theta"].values, beta=ds["beta"].values, vcov_beta=ds["vcov_beta"].values,
                       loglik=float(a["loglik"]), state=state, tmap=internal.tmap, converged=bool(a["converged"]),
                       message=str(a["message"]), n_eval=int(a["n_eval"]),
                       vcov_full=ds["vcov_full"].values if "vcov_full" in ds else None,
                       sigma=None if math.isnan(sigma) else sigma, decrement=float(a["decrement"]), internal=internal,
                       dispersion=None if math.isnan(family_dispersion) else family_dispersion)
    cls = PQLFit if kind == "PQLFit" else MLFit
    change = float(a.get("nagq_change", np.nan))  # NaN: the rule was given (or a file from before the choice)
    fit = cls(model, str(a["method"]), raw, float(a["seconds"]), nagq=int(a["nagq"]),
              dispersion="estimate" if int(a["dispersion_estimated"]) else None, scaling=scaling,
              nagq_change=None if math.isnan(change) else change)
    fit.flags = _flags_from(ds)
    fit.blas_threads = None if int(a.get("blas_threads", 1)) < 0 else int(a.get("blas_threads", 1))
    return fit


# ---------------------------------------------------------------------------- legacy
def load_legacy(path):
    """Read a result from the earlier, pickle-based format (a gzip-compressed pickle), with a
    ``FutureWarning``: this reader goes with the next release. Like any pickle, the file can run
    code when loaded: use it only on files you trust, and re-save them
    (``bg.save(bg.load(path), new_path)``) as data."""
    import pickle

    path = Path(path)
    where = repr(str(path))
    warnings.warn(f"{where} is in bayesglmm's legacy pickle format, read for one more release: re-save it as data "
                  f"with bg.save(bg.load({str(path)!r}), 'result.nc')", FutureWarning, stacklevel=3)
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()  # to the end, so that gzip checks its CRC and length
        payload = pickle.loads(raw)
    except (zlib.error, EOFError, gzip.BadGzipFile) as err:
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
    if hasattr(result, "theta") and not hasattr(result, "_scaling"):  # an MLFit from before the internal frame
        from .frequentist.rescale import internal_estimates
        from .scaling import scale_design

        result._scaling = scale_design(result.model.design, result.model.family)
        result._internal = internal_estimates(result.theta, result.beta, result.dispersion, result._scaling)
    return result
