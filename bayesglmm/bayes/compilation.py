"""Counting the compilations PyTensor's Numba backend does, to measure compiled-code reuse.

PyMC compiles a model's log density and gradient with Numba. Numba looks a function up in
PyTensor's on-disk cache first (the key is the graph, constants included) and compiles only on
a miss; :func:`count_compilations` counts the misses, through Numba's ``"numba:compile"`` event.
It sees compilations in this process: chains sampled in worker processes load what the parent
compiled.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["CompileCount", "count_compilations"]


@dataclass
class CompileCount:
    """Compilations seen so far inside :func:`count_compilations`."""

    n: int = 0


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

        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", _Listener()):
        yield count
