"""nutpie's compiled model with C entry points Numba keeps on disk: a structure compiled once on a
machine samples in a new process without compiling.

``nutpie.compile_pymc_model`` compiles the log density and its gradient in two steps: PyTensor
turns the graph into a Numba function (kept in PyTensor's on-disk cache, keyed by the graph), and
nutpie wraps it in a ``numba.cfunc`` with a C signature for its Rust sampler. The wrapper closes
over the model's shared arrays (Numba's "dynamic globals"), so Numba never caches it: every new
process compiles it again, 6–9 s on two cores, most of a first ``sample()`` (Numba's typing of its
own overloads, 45 dispatchers; measured in docs/performance.md).

:func:`compile_nutpie` builds the same :class:`nutpie.compile_pymc.CompiledPyMCModel` from the same
PyTensor functions (nutpie's ``_make_functions``) with wrappers of its own that read the shared
arrays through nutpie's user-data record (pointers, sizes and shapes, written by nutpie) instead of
closing over them. Their source is generated per layout and registered with PyTensor's cache
locator under a key made of the inner function's PyTensor key and the wrapper's source, so Numba
stores them and a later process loads them (about 0.3 s) instead of compiling. The sampler,
``with_data`` and the draws are nutpie's own: the density is the same function, so the draws
equal those of ``nutpie.compile_pymc_model`` at the same seed (tested).

A process that meets a structure compiled before on the machine need not run PyTensor at all:
:func:`compile_nutpie` stores a manifest of the compiled model (JSON: sizes, the variables' names,
slices and shapes, the shared arrays' names, ranks and dtypes in the entry points' order, and the
inner functions' PyTensor keys) beside PyTensor's compiled code, under the structure key and a
hash of the package's source and the libraries' versions (:func:`code_salt`), and
:func:`load_nutpie` rebuilds the compiled model from it with the entry points loaded from Numba's
cache — their code has the inner function's linked in, so no inner function is given and nothing
can compile. PyTensor's rewriting of the graph (1–5 s a process: sleepstudy's correlated block
with its LKJ prior 2.7 s of its 4.3 s first call) is skipped; what a first call still builds is
PyMC's start-point function (:class:`~bayesglmm.bayes.compilation.StartPoints`).

This leans on nutpie's internals (``_make_functions``, ``make_user_data``, the user-data record
layout, ``CompiledPyMCModel``, ``_prepare_dims_and_coords``, ``_rv_dict_to_flat_array_wrapper``)
and Numba's (``CFunc``'s cache): the dependency is pinned to nutpie 0.16.x, the manifest's name
holds the versions, and a graph whose PyTensor function has no cache key falls back to
``nutpie.compile_pymc_model`` (and stores no manifest).
"""

from __future__ import annotations

import functools
import hashlib

import numba
import numpy as np
from numba.extending import intrinsic

__all__ = ["compile_nutpie", "load_nutpie", "wrapper_source", "code_salt", "manifest_path", "save_manifest"]

#: bump to invalidate every wrapper kept on disk (a change of the generated code's meaning that
#: its source does not show)
WRAPPER_VERSION = 1
#: bump to invalidate every manifest (:func:`save_manifest`: a change of its fields' meaning)
MANIFEST_VERSION = 1


@intrinsic
def _void_ptr(typingctx, address):
    """The integer ``address`` as a ``void*`` (nutpie's user data holds the arrays' addresses)."""
    from numba.core import cgutils, types

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


def _signatures():
    from numba import types

    double_ptr = types.CPointer(types.double)
    logp = types.int64(types.uint64, double_ptr, double_ptr, double_ptr, types.voidptr)
    expand = types.int64(types.uint64, types.uint64, double_ptr, double_ptr, types.voidptr)
    return logp, expand


def wrapper_source(kind: str, n_dim: int, n_out: int | None, layout: list[tuple[int, str]], use: list[int]) -> str:
    """The Python source of a C entry point for nutpie: ``kind`` ``"logp"`` (value and gradient) or
    ``"expand"`` (the draws' stored values, ``n_out`` of them), for ``n_dim`` parameters.

    ``layout`` is nutpie's user-data record as (ndim, dtype name) per shared array, in its order: all
    pointers (uint64), then all sizes, then each array's shape; ``use`` the positions of the arrays
    the inner function takes, in its argument order. The inner function is the global ``inner``;
    the return codes are nutpie's (0 ok, −1 wrong sizes, 3 and 4 a non-finite gradient or value, 1
    and −2 an exception).
    """
    m = len(layout)
    total = 2 * m + sum(ndim for ndim, _ in layout)
    offsets, off = [], 2 * m
    for ndim, _ in layout:
        offsets.append(off)
        off += ndim
    if kind == "logp":
        lines = [f"def nutpie_{kind}(dim, x_, out_, logp_, user_data_):",
                 f"    if dim != {n_dim}:", "        return -1"]
    elif kind == "expand":
        lines = [f"def nutpie_{kind}(dim, expanded, x_, out_, user_data_):",
                 f"    if dim != {n_dim} or expanded != {n_out}:", "        return -1"]
    else:
        raise ValueError(f"kind must be 'logp' or 'expand', got {kind!r}")
    body = [f"ud = numba.carray(user_data_, ({max(total, 1)},), np.uint64)"]
    args = ["x"]
    for i in use:
        ndim, dtype = layout[i]
        shape = "(" + "".join(f"ud[{offsets[i] + j}], " for j in range(ndim)) + ")"
        body.append(f"a{i} = numba.carray(_void_ptr(ud[{i}]), (ud[{m + i}],), np.{np.dtype(dtype).name}).reshape({shape})")
        args.append(f"a{i}")
    body.append(f"x = numba.carray(x_, ({n_dim},))")
    if kind == "logp":
        body += [f"out = numba.carray(out_, ({n_dim},))", "logp = numba.carray(logp_, ())",
                 f"logp_val, grad = inner({', '.join(args)})", "logp[()] = logp_val", "out[...] = grad",
                 "if not np.all(np.isfinite(out)):", "    return 3", "if not np.isfinite(logp_val):", "    return 4"]
        failed = 1
    else:
        body += [f"out = numba.carray(out_, ({n_out},))", f"(values,) = inner({', '.join(args)})", "out[...] = values"]
        failed = -2
    lines += ["    try:", *("        " + line for line in body), "    except Exception:", f"        return {failed}",
              "    return 0"]
    return "\n".join(lines) + "\n"


def _wrapper_function(inner, inner_key, kind, n_dim, n_out, layout, use):
    """The Python function of a C entry point (:func:`wrapper_source`), registered with PyTensor's
    cache locator under a key of the inner function's PyTensor key and the wrapper's source."""
    from pytensor.link.numba.cache import compile_numba_function_src

    src = wrapper_source(kind, n_dim, n_out, layout, use)
    key = hashlib.sha256(f"{WRAPPER_VERSION}|{numba.__version__}|{inner_key}|{src}".encode()).hexdigest()
    # this module's globals: Numba rebuilds a cached function's environment by importing __name__
    return compile_numba_function_src(src, f"nutpie_{kind}", globals() | {"inner": inner}, cache_key=key)


def _cached_cfunc(inner, signature, kind, n_dim, n_out, layout, use):
    """The C entry point around the PyTensor Numba function ``inner``, loaded from Numba's on-disk
    cache when a process built it before, and the inner function's PyTensor key (None, None when
    ``inner`` has no PyTensor cache key)."""
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    inner_key = CACHED_SRC_FUNCTIONS.get(getattr(inner, "py_func", None))
    if inner_key is None:
        return None, None
    fn = _wrapper_function(inner, inner_key, kind, n_dim, n_out, layout, use)
    return numba.cfunc(signature, cache=True)(fn), inner_key


def _stored_cfunc(signature, inner_key, kind, n_dim, n_out, layout, use):
    """The C entry point :func:`_cached_cfunc` stored under these arguments, loaded from Numba's
    on-disk cache without its inner function (its code is linked into the entry point's); None
    when it is not there. Nothing is compiled: the inner function is absent (``None``), so a
    compile could only fail, never build another function."""
    from numba.core import sigutils
    from numba.core.ccallback import CFunc

    fn = _wrapper_function(None, inner_key, kind, n_dim, n_out, layout, use)
    cfunc = CFunc(fn, sigutils.normalize_signature(signature), locals={}, options={})  # as numba.cfunc does
    cfunc.enable_caching()
    if cfunc._cache.load_overload(cfunc._sig, cfunc._targetdescr.target_context) is None:
        return None
    try:
        cfunc.compile()  # loads what load_overload found
    except Exception:  # the entry gone since (another process pruned it): compiling fails on inner=None
        return None
    return cfunc


def compile_nutpie(pymc_model, initial_point_fn=None, key: str | None = None):
    """``nutpie.compile_pymc_model(pymc_model)`` (Numba backend, PyMC's jittered support points as
    start), with C entry points kept in Numba's on-disk cache (see the module docstring).

    Parameters
    ----------
    pymc_model : pymc.Model
    initial_point_fn : callable, optional
        PyMC's start-point function of the model (``make_initial_point_fn``: seed → values by
        name), when the caller has built it already (0.4 s a build); None builds it.
    key : str, optional
        The graph's structure key: its manifest is stored (:func:`save_manifest`), so that a later
        process rebuilds the compiled model without PyTensor (:func:`load_nutpie`).

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
    """
    import nutpie
    import nutpie.compile_pymc as ncp
    from pymc.initial_point import make_initial_point_fn

    if initial_point_fn is None:
        initial_point_fn = make_initial_point_fn(model=pymc_model, default_strategy="support_point",
                                                 jitter_rvs=set(pymc_model.free_RVs), return_transformed=True)
    initial_point_fn = ncp._wrap_with_lock(initial_point_fn)
    n_dim, n_expanded, logp_pt, expand_pt, start_fn, shape_info, reparameterized = ncp._make_functions(
        pymc_model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=initial_point_fn,
        var_names=None)
    keys, shared_data = {}, {}
    for var in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        if var not in keys:  # deterministic field names (nutpie's are random): the record's layout is in the key
            keys[var] = f"s{len(keys)}"
            shared_data[keys[var]] = np.array(var.get_value(), order="C", copy=True)
            shared_data[keys[var]].flags.writeable = False
    order = list(keys)
    layout = [(shared_data[keys[var]].ndim, shared_data[keys[var]].dtype.name) for var in order]
    logp_sig, expand_sig = _signatures()
    logp_use = [order.index(var) for var in logp_pt.get_shared()]
    expand_use = [order.index(var) for var in expand_pt.get_shared()]
    logp_c, logp_key = _cached_cfunc(logp_pt.vm.jit_fn, logp_sig, "logp", n_dim, None, layout, logp_use)
    expand_c, expand_key = _cached_cfunc(expand_pt.vm.jit_fn, expand_sig, "expand", n_dim, n_expanded, layout,
                                         expand_use)
    if logp_c is None or expand_c is None:  # a graph PyTensor does not cache: nutpie's own wrappers
        return nutpie.compile_pymc_model(pymc_model)
    if key is not None and len({var.name for var in order}) == len(order) and all(var.name for var in order):
        save_manifest(key, {
            "n_dim": int(n_dim), "n_expanded": int(n_expanded), "reparameterized": [str(n) for n in reparameterized],
            "shape_info": [[str(name), [int(sl.start), int(sl.stop)], [int(d) for d in shape]]
                           for name, sl, shape in zip(*shape_info)],
            "shared": [[str(var.name), int(ndim), str(dtype)] for var, (ndim, dtype) in zip(order, layout)],
            "logp": [str(logp_key), [int(i) for i in logp_use]],
            "expand": [str(expand_key), [int(i) for i in expand_use]]})
    return _compiled_model(pymc_model, n_dim, n_expanded, shape_info, reparameterized, logp_c, expand_c, start_fn,
                           keys, shared_data, logp_pt, expand_pt)


def _compiled_model(pymc_model, n_dim, n_expanded, shape_info, reparameterized, logp_c, expand_c, start_fn, keys,
                    shared_data, logp_pt=None, expand_pt=None):
    import nutpie.compile_pymc as ncp

    dims, coords = ncp._prepare_dims_and_coords(pymc_model, shape_info, reparameterized)
    return ncp.CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords, _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp_c, compiled_expand_func=expand_c, initial_point_func=start_fn,
        shared_data=shared_data, shared_var_keys=keys, user_data=ncp.make_user_data(keys, shared_data),
        n_expanded=n_expanded, shape_info=shape_info, logp_func=logp_pt, expand_func=expand_pt,
        reparameterized_names=reparameterized)


@functools.cache  # a function of the installed files: read once a process
def code_salt() -> str:
    """What a stored model depends on beside its structure key: this package's source (every
    ``.py`` file of ``bayesglmm``) and the versions of PyMC, PyTensor, Numba, nutpie and NumPy. A
    change to any of them makes every stored manifest unreachable."""
    from importlib.metadata import version
    from pathlib import Path

    h = hashlib.sha256(f"{MANIFEST_VERSION}|{WRAPPER_VERSION}".encode())
    for package in ("pymc", "pytensor", "numba", "nutpie", "numpy"):
        h.update(f"|{package}={version(package)}".encode())
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def manifest_path(key: str):
    """Where the manifest of structure ``key`` is kept: beside PyTensor's and Numba's compiled code
    (``pytensor.config.base_compiledir``), named by a hash of the key and :func:`code_salt`."""
    from pathlib import Path

    import pytensor

    name = hashlib.sha256(f"{code_salt()}|{key}".encode()).hexdigest()[:32]
    return Path(pytensor.config.base_compiledir) / "bayesglmm" / f"{name}.json"


def save_manifest(key: str, manifest: dict) -> None:
    """Write what :func:`load_nutpie` needs to rebuild the compiled model of structure ``key``
    without PyTensor (JSON; written whole or not at all)."""
    import json
    import os
    import tempfile

    path = manifest_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            json.dump({"version": MANIFEST_VERSION, "key": key, **manifest}, f)
        os.replace(f.name, path)
    except OSError:  # a read-only cache directory: the next process compiles, as before
        pass


def load_nutpie(pymc_model, key: str, initial_point_fn):
    """The compiled model of structure ``key`` as :func:`compile_nutpie` builds it, rebuilt from
    its manifest and the entry points Numba keeps on disk, without PyTensor: no graph rewriting and
    no compiling, the first ``sample()`` of a new process on a machine that compiled the structure
    before. None when anything is missing or does not match this model (then compile).

    The manifest holds the sizes, the variables' names, slices and shapes, the shared arrays'
    names, ranks and dtypes in the entry points' order, and the inner functions' PyTensor keys.
    This model must name the same shared arrays with the same ranks and dtypes and the same
    variables in the same order; the start points' shapes are checked by nutpie at each start, and
    the entry points refuse other sizes. The structure key says the graph is the same (the shapes
    are part of it: β's names and the blocks' terms, and for the full model the levels), as it does
    for the reuse of a compiled model in a process (:class:`~bayesglmm.bayes.compilation.CompiledCache`);
    the manifest's name holds the package's source and the libraries' versions (:func:`code_salt`).

    Parameters
    ----------
    pymc_model : pymc.Model
        Built for the shared-data graph of ``key``.
    key : str
        Its structure key.
    initial_point_fn : callable
        PyMC's start-point function of the model (seed → values by name).

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel or None
    """
    import json

    import nutpie.compile_pymc as ncp

    from .compilation import shared_variables

    path = manifest_path(key)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("version") != MANIFEST_VERSION or manifest.get("key") != key:
        return None
    variables = shared_variables(pymc_model)
    keys, shared_data, layout = {}, {}, []
    for i, (name, ndim, dtype) in enumerate(manifest["shared"]):
        var = variables.get(name)
        if var is None:
            return None
        value = np.array(var.get_value(borrow=True), order="C", copy=True)
        if value.ndim != ndim or value.dtype.name != dtype:
            return None
        value.flags.writeable = False
        keys[var], shared_data[f"s{i}"] = f"s{i}", value
        layout.append((ndim, dtype))
    n_dim, n_expanded = manifest["n_dim"], manifest["n_expanded"]
    names = [name for name, _, _ in manifest["shape_info"]]
    shapes = [tuple(shape) for _, _, shape in manifest["shape_info"]]
    shape_info = (names, [slice(*sl) for _, sl, _ in manifest["shape_info"]], shapes)
    free = [pymc_model.rvs_to_values[rv].name for rv in pymc_model.free_RVs]
    remaining = [var for var in pymc_model.unobserved_value_vars if var.name not in free]
    if names != free + [var.name for var in remaining]:
        return None
    logp_sig, expand_sig = _signatures()
    logp_c = _stored_cfunc(logp_sig, manifest["logp"][0], "logp", n_dim, None, layout, manifest["logp"][1])
    expand_c = _stored_cfunc(expand_sig, manifest["expand"][0], "expand", n_dim, n_expanded, layout,
                             manifest["expand"][1]) if logp_c is not None else None
    if expand_c is None:
        return None
    start_fn = ncp._rv_dict_to_flat_array_wrapper(ncp._wrap_with_lock(initial_point_fn), names=free,
                                                  shapes=shapes[:len(free)])
    return _compiled_model(pymc_model, n_dim, n_expanded, shape_info, manifest["reparameterized"], logp_c,
                           expand_c, start_fn, keys, shared_data)
