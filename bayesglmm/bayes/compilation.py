"""Compiled-code reuse: counting Numba's compilations, and nutpie's compiled models kept by structure.

PyMC compiles a model's log density and gradient with Numba. Numba looks a function up in
PyTensor's on-disk cache first (the key is the graph, constants included) and compiles only on
a miss; :func:`count_compilations` counts the misses, through Numba's ``"numba:compile"`` event.
It sees compilations in this process: chains sampled in worker processes load what the parent
compiled.

nutpie's compiled models are built by :func:`bayesglmm.bayes.nutpie_compile.compile_nutpie`
(Numba's on-disk cache: nothing compiles for a structure compiled before on this machine);
:class:`CompiledCache` keeps them by structure key within a process, so that a later model of the
same structure (other priors, another response) samples without even building one
(:func:`bayesglmm.bayes.nuts.sample_nutpie`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CompileCount", "count_compilations", "CompiledCache", "compiled_models", "array_digest",
           "shared_variables", "shared_values", "StartPoints"]


@dataclass
class CompileCount:
    """Compilations seen so far inside :func:`count_compilations`: how many, and the qualified
    names of the functions compiled (``names``)."""

    n: int = 0
    names: list = field(default_factory=list)


@contextmanager
def count_compilations():
    """Count Numba compilations (cache misses) in the block.

    Examples
    --------
    >>> from bayesglmm.bayes import count_compilations
    >>> with count_compilations() as count:
    ...     pass
    >>> count.n
    0
    """
    from numba.core import event

    count = CompileCount()

    class _Listener(event.Listener):
        def on_start(self, ev):
            count.n += 1
            func = getattr(ev.data.get("dispatcher"), "py_func", None)
            count.names.append(f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', '?')}")

        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", _Listener()):
        yield count


# --- nutpie: the compiled model kept and reused ------------------------------------------------
def array_digest(*parts) -> str:
    """A digest of arrays and plain values (dtype, shape and bytes of each array): the structure
    key of a graph whose constants they are."""
    import hashlib

    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        if isinstance(part, np.ndarray) or (part is not None and np.ndim(part) and not isinstance(part, (str, tuple))):
            a = np.ascontiguousarray(part)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()


@dataclass
class CompiledCache:
    """nutpie's compiled models, kept for reuse within a process.

    Building nutpie's compiled model costs about a second even when nothing compiles (PyTensor
    rewrites the graph, Numba loads the code from its on-disk cache:
    :mod:`bayesglmm.bayes.nutpie_compile`), more than sampling a small model takes. The entries are
    graphs whose data — hyperparameters, response and whatever else a builder makes data
    (:mod:`bayesglmm.bayes.prior_graph`, :func:`bayesglmm.bayes.marginalized.build_marginal_model`)
    — are shared variables, by ``structure`` key (digested by :func:`array_digest`): a later model
    of the structure gets its own data swapped in (``CompiledPyMCModel.with_data``), so a prior sweep
    or a simulation study builds one compiled model (:func:`bayesglmm.bayes.nuts.sample_nutpie`).

    Least-recently-used entries beyond ``maxsize`` are dropped; ``maxsize=0`` disables reuse.
    ``hits`` and ``misses`` count lookups. The one instance used by :meth:`bayesglmm.GLMM.sample`
    is :data:`compiled_models`.
    """

    maxsize: int = 32
    hits: int = 0
    misses: int = 0
    entries: OrderedDict = field(default_factory=OrderedDict, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def lookup(self, key: str):
        """The compiled model kept under ``key``, or None (counted as a hit or a miss)."""
        with self.lock:
            if key in self.entries:
                self.hits += 1
                self.entries.move_to_end(key)
                return self.entries[key]
            self.misses += 1
            return None

    def keep(self, key: str, compiled) -> None:
        """Keep ``compiled`` under ``key`` (dropping the least recently used beyond ``maxsize``)."""
        with self.lock:
            if self.maxsize > 0:
                self.entries[key] = compiled
                while len(self.entries) > self.maxsize:
                    self.entries.popitem(last=False)

    def get(self, key: str, compile_fn: Callable[[], Any]) -> tuple[Any, bool]:
        """The compiled model for ``key`` and whether it was reused; compiles (and keeps) it on a miss."""
        found = self.lookup(key)
        if found is not None:
            return found, True
        compiled = compile_fn()
        self.keep(key, compiled)
        return compiled, False

    def clear(self) -> None:
        """Drop every compiled model (the counters stay)."""
        with self.lock:
            self.entries.clear()

    def __len__(self) -> int:
        return len(self.entries)


#: the compiled models :meth:`bayesglmm.GLMM.sample` reuses with ``nuts_sampler="nutpie"``
compiled_models = CompiledCache()


def shared_variables(pymc_model) -> dict[str, Any]:
    """The named shared variables holding arrays that the model's graph reads (its data:
    hyperparameters and response), by name."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import ancestors

    out = {}
    roots = [*pymc_model.basic_RVs, *pymc_model.potentials, *pymc_model.deterministics,
             *pymc_model.rvs_to_values.values()]  # the observed data are the observed RVs' values
    for var in ancestors(roots):
        if isinstance(var, SharedVariable) and var.name and not var.name.startswith("rng"):
            value = var.get_value(borrow=True)
            if isinstance(value, np.ndarray) or np.isscalar(value):
                out[var.name] = var
    return out


def shared_values(pymc_model) -> dict[str, np.ndarray]:
    """The values of :func:`shared_variables`, by name."""
    return {name: np.asarray(var.get_value(borrow=True)) for name, var in shared_variables(pymc_model).items()}


class StartPoints:
    """nutpie's start points for every model of a structure, from one compiled function.

    PyMC's start points (the priors' support points, jittered, on the unconstrained scale) are a
    PyTensor function of the graph's shared data: building it for each model of a structure costs
    170 ms (a tenth of a small model's later ``sample()``). This keeps the function of the
    structure's first model and evaluates it with another model's data set into that model's
    shared variables (under a lock), so that a reused compiled model starts where a fresh compile
    of the new model would (tested: identical draws).
    """

    def __init__(self, pymc_model):
        from pymc.initial_point import make_initial_point_fn

        #: PyMC's start-point function of the first model (seed → values by name), as nutpie's own
        self.fn = make_initial_point_fn(model=pymc_model, default_strategy="support_point",
                                        jitter_rvs=set(pymc_model.free_RVs), return_transformed=True)
        self.names = [pymc_model.rvs_to_values[rv].name for rv in pymc_model.free_RVs]
        self.shared = {var.name: var for var in self.fn.__wrapped__.get_shared()
                       if var.name and not var.name.startswith("rng")}
        self.lock = threading.Lock()

    def __call__(self, data: dict[str, np.ndarray] | None = None) -> Callable:
        """nutpie's start-point function for the model whose shared data are ``data`` (by name;
        None: the first model's own), returning the flat start point for a seed."""
        if data is not None and set(self.shared) - set(data):
            raise ValueError(f"the start points read data this model does not name: {sorted(set(self.shared) - set(data))}")

        def start(seed=None):
            with self.lock:
                if data is not None:
                    for name, var in self.shared.items():
                        var.set_value(data[name], borrow=True)
                point = self.fn(seed)
            return np.ascontiguousarray(np.concatenate([np.asarray(point[n], dtype="float64").ravel()
                                                        for n in self.names]))

        return start
