"""One fused PyTensor Op for the AGQ marginal log-likelihood of a scalar random effect per group,
and the Numba kernel that draws the random effects from their conditionals afterwards.

:func:`bayesglmm.bayes.marginalized.marginal_loglik` composed of PyTensor's elementwise ops, group
sums and a ``scan`` of Newton steps costs about 0.2 ms per gradient on bacteria (121 rows × 31
nodes) in Numba: a dozen loops over (rows × nodes) temporaries. :class:`AGQMarginal` does the
whole computation in one Numba loop nest, with its gradient in the same pass:

* per group, the conditional mode û of u by safeguarded Newton steps (capped at 1, to 1e-12),
  and the curvature R² = 1 + Σ aᵢ² wᵢ there (w the Fisher weight of the canonical link);
* the nodes uₖ = û + √2 xₖ / R, Fₖ = log wₖ + xₖ² + Σᵢ κ(baseᵢ + aᵢ uₖ) − uₖ²/2 with κ the
  log-likelihood kernel (y η − n log(1 + eᶯ), or y η − eᶯ), and the group's log-likelihood
  logsumexp(F) + ½ log 2 − ½ log 2π − log R, weighted by the number of groups sharing the pattern;
* its gradient in baseᵢ and aᵢ with û and R held fixed (softmax(F)-weighted κ′ and κ′·uₖ): the
  same disconnected-nodes convention as the composed graph, under which NUTS stays exact.

For a random intercept (one ``a`` over the group) exp(baseᵢ + a u) = exp(baseᵢ)·exp(a u): one
exponential per node instead of one per node and row, and the Bernoulli terms Σ log(1 + tᵢ) are
the log of a running product (the Poisson terms reduce to sums over the group). Slopes, or
|η| beyond 300, or the probit and cloglog links (:func:`agq_kind`), take the direct path. :class:`AGQVectorMarginal` (a block of 2–3 terms, the
product rule) factorises likewise: on the product grid exp(ηᵢ) at all q^k nodes is an outer
product of k·q exponentials per row (:func:`agq_vector_kernel`). ``perform`` (Python/C backends) calls the same
compiled kernel.
"""

from __future__ import annotations

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from .. import kernels
from ..kernels import BINOMIAL_CLOGLOG, BINOMIAL_LOGIT, BINOMIAL_PROBIT, POISSON_LOG
from . import quadrature, vexp
from .draws import conditional_draws, conditional_draws_vector
from .quadrature import agq_kernel, agq_kind, agq_vector_kernel

__all__ = ["AGQMarginal", "AGQVectorMarginal", "agq_marginal", "agq_vector_marginal", "gauss_hermite_rule",
           "source_salt",
           # the kernels and draws the Ops are made of, importable from here as before
           "agq_vector_kernel", "conditional_draws_vector", "agq_kernel", "conditional_draws", "agq_kind",
           "BINOMIAL_LOGIT", "POISSON_LOG", "BINOMIAL_PROBIT", "BINOMIAL_CLOGLOG"]


class _FusedAGQ(Op):
    """The common part of the two fused AGQ Ops: inputs ``base``, the random-effect
    coefficients and the dispersion ``phi`` (a scalar: a dispersion family's θ or shape, unused by
    the others) (differentiable), then the constants ``start``, ``y``, ``n``, ``counts``, the
    nodes and their ``logw``; outputs the value and its gradients in the first three inputs (used by
    ``pullback`` only: they are not differentiable themselves; the modes and curvatures held fixed). ``kernel`` computes all three;
    ``kind`` is the family's :attr:`~bayesglmm.families.Family.kernel_code` (:func:`agq_kind`)."""

    __props__ = ("kind",)
    kernel = None

    def __init__(self, kind: int):
        self.kind = int(kind)

    def make_node(self, base, coef, phi, start, y, n, counts, nodes, logw):
        base, coef = pt.as_tensor_variable(base, dtype="float64"), pt.as_tensor_variable(coef, dtype="float64")
        phi = pt.as_tensor_variable(phi, dtype="float64")
        if phi.ndim != 0:
            raise TypeError("phi must be a scalar")
        start = pt.as_tensor_variable(start, dtype="int64")
        rest = [pt.as_tensor_variable(v, dtype="float64") for v in (y, n, counts, nodes, logw)]
        return Apply(self, [base, coef, phi, start, *rest], [pt.dscalar(), base.type(), coef.type(), pt.dscalar()])

    def perform(self, node, inputs, output_storage):
        inputs = list(inputs)
        inputs[2] = float(inputs[2])
        value, gbase, gcoef, gphi = type(self).kernel(*inputs, self.kind)
        output_storage[0][0] = np.asarray(value)
        output_storage[1][0] = gbase
        output_storage[2][0] = gcoef
        output_storage[3][0] = np.asarray(gphi)

    def connection_pattern(self, node):
        # only the value is differentiable (its gradient is outputs 1, 2 and 3)
        return [[True, False, False, False]] * 3 + [[False, False, False, False]] * 6

    def pullback(self, inputs, outputs, output_grads):
        gz = output_grads[0]
        return [gz * outputs[1], gz * outputs[2], gz * outputs[3]] + [disconnected_type() for _ in range(6)]

    def infer_shape(self, node, shapes):
        return [(), shapes[0], shapes[1], ()]


class AGQMarginal(_FusedAGQ):
    """Σ_j counts_j · log ∫ Π_{i∈j} p(yᵢ | baseᵢ + aᵢ u) φ(u) du by AGQ, and its gradient.

    Inputs: ``base`` (n,), ``a`` (n,), ``phi`` (a scalar: the dispersion) — differentiable — and the constants ``start`` (J + 1,)
    int64 row offsets of the groups (rows sorted by group), ``y``, ``n`` (trials) (n,),
    ``counts`` (J,), Gauss–Hermite ``x`` (K,, ascending) and ``logw`` = log w + x² (K,).
    Outputs: the value, d/d base, d/d a, d/d phi (the last three for the gradient only).
    """

    kernel = agq_kernel


class AGQVectorMarginal(_FusedAGQ):
    """:class:`AGQMarginal` for a k-vector random effect per group (the product rule): inputs
    ``base`` (n,), ``A`` (n, k) and ``phi`` — differentiable — then ``start``, ``y``, ``n``, ``counts``,
    the product nodes ``X`` (M, k) and ``logw`` (M,); outputs the value, d/d base, d/d A, d/d phi."""

    kernel = agq_vector_kernel


def source_salt(path: str | None = None) -> int:
    """A hash of the kernels' source for PyTensor's Numba cache key of an Op: the cache keys an Op by
    its type and props, so the kernel's source must be in the key too, or an edited kernel would be
    served from the on-disk cache. ``path`` (default: the AGQ kernels, :mod:`bayesglmm.bayes.quadrature`),
    with :mod:`bayesglmm.bayes.vexp` and the row functions (:mod:`bayesglmm.kernels`), which the
    kernels call."""
    import hashlib
    from pathlib import Path

    h = hashlib.blake2b(digest_size=6)
    for source in (path or quadrature.__file__, vexp.__file__, kernels.__file__):
        h.update(Path(source).read_bytes())
    return int(h.hexdigest(), 16)


@register_funcify_default_op_cache_key(AGQMarginal)
@register_funcify_default_op_cache_key(AGQVectorMarginal)
def _numba_funcify_agq(op, node=None, **kwargs):
    kind, kernel = op.kind, type(op).kernel

    @numba.njit
    def fused_agq_numba(base, coef, phi, start, y, n, counts, nodes, logw):
        value, gbase, gcoef, gphi = kernel(base, coef, phi.item(), start, y, n, counts, nodes, logw, kind)
        return np.asarray(value), gbase, gcoef, np.asarray(gphi)

    return fused_agq_numba, source_salt()


def gauss_hermite_rule(nagq: int, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The nodes and log weights the fused Ops take: ``x`` (nagq,) and log w + x² for one term,
    the product rule's ``X`` (nagq^k, k) and its log weights for a block of k terms."""
    if k == 1:
        x, w = np.polynomial.hermite.hermgauss(nagq)
        return x, np.log(w) + x**2
    from ..frequentist.agq import product_rule

    return product_rule(nagq, k)


def agq_marginal(kind: int, base, a, start, y, n, counts, nagq: int, phi=1.0, data=None):
    """The AGQ marginal log-likelihood as a PyTensor scalar (see :class:`AGQMarginal`); ``phi`` a
    dispersion family's θ or shape (a scalar tensor; unused by the others). ``data(name, array)``
    puts each constant into the graph (default: as a constant; a shared variable makes it data)."""
    data = data or (lambda name, value: value)
    x, logw = gauss_hermite_rule(nagq)
    return AGQMarginal(kind)(base, a, phi, data("start", np.asarray(start, np.int64)), data("y", np.asarray(y, float)),
                             data("n", np.asarray(n, float)), data("counts", np.asarray(counts, float)),
                             data("nodes", x), data("logw", logw))[0]


def agq_vector_marginal(kind: int, base, A, k: int, start, y, n, counts, nagq: int, phi=1.0, data=None):
    """The product-rule AGQ marginal log-likelihood of a k-vector random effect (``A`` (n, k)) as
    a PyTensor scalar (see :class:`AGQVectorMarginal`); ``nagq`` nodes per dimension; ``data`` as
    in :func:`agq_marginal`."""
    data = data or (lambda name, value: value)
    X, logw = gauss_hermite_rule(nagq, k)
    return AGQVectorMarginal(kind)(base, A, phi, data("start", np.asarray(start, np.int64)),
                                   data("y", np.asarray(y, float)), data("n", np.asarray(n, float)),
                                   data("counts", np.asarray(counts, float)), data("nodes", X), data("logw", logw))[0]
