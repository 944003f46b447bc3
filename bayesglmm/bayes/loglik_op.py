"""The full model's log-likelihood as one fused PyTensor Op (canonical links), for NUTS.

``pm.Bernoulli("y", logit_p=η)`` compiles (PyTensor's Numba backend) to elementwise loops with a
softplus for the value and a sigmoid for the gradient: two exponentials and a ``log1p`` per row,
each a scalar libm call, plus the temporaries between the loops. ohio's 2,148 rows cost about
85 µs per log density and gradient that way, most of a NUTS step. :class:`GLMLoglik` computes
Σᵢ ℓᵢ(ηᵢ) and ∂ℓᵢ/∂ηᵢ with one exponential per row, all of them in one SIMD pass
(:func:`~bayesglmm.bayes.vexp.exp_into`: ohio's kernel 12.1 → 7.0 µs against libm's ``exp``):

* binomial, logit link: t = e^(−|η|), ℓ = yη − n·max(η, 0) − n·log(1 + t) and ∂ℓ/∂η = y − n·p with
  p = 1/(1 + t) (η ≥ 0) or t/(1 + t); for a Bernoulli row (n = 1) the log(1 + t) terms are summed as
  the log of a running product (1 + t ≤ 2: renewed every :data:`PRODUCT_ROWS` rows, far from
  overflow), one logarithm per 512 rows instead of one per row;
* Poisson, log link: ℓ = yη − e^η, ∂ℓ/∂η = y − e^η.

The terms free of the parameters (log C(n, y), −log y!) come in as one number, so the value is
the distribution's log-likelihood itself (as ``pm.Bernoulli``/``pm.Binomial``/``pm.Poisson``
give it). The sampler's graph takes it as a ``pm.Potential``
(:func:`bayesglmm.bayes.model.build_pymc_model` with ``likelihood="fused"``); the model users see
(:meth:`bayesglmm.GLMM.pymc_model`) keeps the observed variable ``y`` for posterior predictive
draws and pointwise log-likelihoods. ``perform`` (Python/C backends) calls the same compiled
kernel; tested equal to PyMC's distributions, value and gradient, to 1e-10.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from ..kernels import BINOMIAL_LOGIT, POISSON_LOG, fused_row
from .agq_op import source_salt
from .vexp import exp_into

__all__ = ["GLMLoglik", "glm_loglik", "loglik_constant", "FUSED_CODES", "PRODUCT_ROWS"]

#: the :attr:`~bayesglmm.families.Family.kernel_code` values the fused Op computes: a probability
#: by the logit link, a Poisson mean by the log link (the canonical links)
FUSED_CODES = (BINOMIAL_LOGIT, POISSON_LOG)
#: Bernoulli rows per running product of (1 + t) before its logarithm is taken (2^512 < 1e155)
PRODUCT_ROWS = 512


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def glm_loglik_kernel(eta, y, n, const, code):
    """Σᵢ ℓᵢ(ηᵢ) + ``const`` and ∂ℓᵢ/∂ηᵢ for the (family, link) ``code`` (one of :data:`FUSED_CODES`:
    :data:`~bayesglmm.kernels.BINOMIAL_LOGIT`, :data:`~bayesglmm.kernels.POISSON_LOG`). The rows'
    exponentials in one SIMD pass (:func:`~bayesglmm.bayes.vexp.exp_into`; a Poisson's η clamped to
    [−708, 709]), each row from its exponential by :func:`bayesglmm.kernels.fused_row` in
    branch-free loops over the rows (SIMD too); Bernoulli rows' Σ log(1 + tᵢ) as the logs of running
    products of :data:`PRODUCT_ROWS` rows, other binomial rows by ``log1p``."""
    m = eta.shape[0]
    grad = np.empty(m)
    t = np.empty(m)
    bits = np.empty(m, dtype=np.int64)
    total = 0.0
    if code == BINOMIAL_LOGIT:
        for i in range(m):
            grad[i] = -abs(eta[i])  # the exponentials' arguments, overwritten below
        exp_into(grad, t, bits, m)
        ones = True
        for i in range(m):
            part, grad[i] = fused_row(BINOMIAL_LOGIT, eta[i], t[i], y[i], n[i])
            total += part
            ones = ones and n[i] == 1.0
        for lo in range(0, m, PRODUCT_ROWS):  # 1 + t ≤ 2: a product of 512 stays below 1e155
            prod = 1.0
            for i in range(lo, min(lo + PRODUCT_ROWS, m)):
                prod *= (1.0 + t[i]) if n[i] == 1.0 else 1.0
            total -= math.log(prod)
        if not ones:
            for i in range(m):
                if n[i] != 1.0:
                    total -= n[i] * math.log1p(t[i])
    else:
        exp_into(eta, t, bits, m)
        for i in range(m):
            part, grad[i] = fused_row(POISSON_LOG, eta[i], t[i], y[i], n[i])
            total += part
    return total + const, grad


class GLMLoglik(Op):
    """Σᵢ log p(yᵢ | ηᵢ) for a canonical-link binomial (``code``
    :data:`~bayesglmm.kernels.BINOMIAL_LOGIT`) or Poisson (:data:`~bayesglmm.kernels.POISSON_LOG`)
    response, and its gradient in η.

    Inputs: ``eta`` (n,) — differentiable — and the constants ``y``, ``n`` (trials; ones for a
    Bernoulli or Poisson response) (n,) and ``const`` (a scalar: the terms free of η). Outputs: the
    value and ∂/∂η (the latter for the gradient only: not differentiable itself).
    """

    __props__ = ("code",)

    def __init__(self, code: int):
        if code not in FUSED_CODES:
            raise ValueError(f"code must be one of {FUSED_CODES} (binomial logit, Poisson log), got {code!r}")
        self.code = int(code)

    def make_node(self, eta, y, n, const):
        eta = pt.as_tensor_variable(eta, dtype="float64")
        y, n = (pt.as_tensor_variable(v, dtype="float64") for v in (y, n))
        const = pt.as_tensor_variable(const, dtype="float64")
        return Apply(self, [eta, y, n, const], [pt.dscalar(), eta.type()])

    def perform(self, node, inputs, output_storage):
        value, grad = glm_loglik_kernel(*inputs, self.code)
        output_storage[0][0] = np.asarray(value)
        output_storage[1][0] = grad

    def connection_pattern(self, node):
        return [[True, False]] + [[False, False]] * 3

    def pullback(self, inputs, outputs, output_grads):
        return [output_grads[0] * outputs[1]] + [disconnected_type() for _ in range(3)]

    def infer_shape(self, node, shapes):
        return [(), shapes[0]]


@register_funcify_default_op_cache_key(GLMLoglik)
def _numba_funcify_glm_loglik(op, node=None, **kwargs):
    code = op.code

    @numba.njit
    def glm_loglik_numba(eta, y, n, const):
        value, grad = glm_loglik_kernel(eta, y, n, const, code)
        return np.asarray(value), grad

    return glm_loglik_numba, source_salt(__file__)


def loglik_constant(family, y, trials) -> float:
    """Σᵢ of the log-likelihood's terms free of the parameters: log C(nᵢ, yᵢ) for a binomial
    response (0 for a Bernoulli one), −log yᵢ! for a Poisson one."""
    return float(np.sum(family.loglik_constant(y, trials)))


def glm_loglik(code: int, eta, y, n, const):
    """The fused log-likelihood (see :class:`GLMLoglik`) as a PyTensor scalar."""
    return GLMLoglik(code)(eta, y, n, const)[0]
