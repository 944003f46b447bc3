"""NUTS on the marginal likelihood: each group's random effects integrated out by AGQ in the graph.

For a model with one grouping factor and one random term (``(1 | g)``, ``(0 + x | g)``) the
likelihood factors over the J groups, and each factor is a one-dimensional integral

    p(y_j | β, s) = ∫ Π_{i∈j} p(y_i | η_i = offset_i + x_iβ + s·xr_i·u) φ(u) du,

which adaptive Gauss–Hermite quadrature evaluates to any accuracy: the nodes are centred at each
group's conditional mode û_j and scaled by the curvature R_j² = 1 + s² Σ_{i∈j} w_i xr_i², as in
:mod:`bayesglmm.frequentist.agq` (the same rule; with ``nagq`` = 1 it is the Laplace
approximation). The whole rule is one fused Op (:class:`bayesglmm.bayes.agq_op.AGQMarginal`): the
modes by Newton steps capped at one unit of u (uncapped steps from 0 oscillate on small binary
groups with a large SD), to 1e-12, the nodes, and the gradient with the modes and curvatures held
fixed (their gradient is disconnected). That leaves NUTS exact: the leapfrog map stays volume
preserving and reversible for any force, and the acceptance uses the log density itself, whose
value is the quadrature at those nodes — only the gradient omits the nodes' (second-order small)
dependence on the parameters. A block of 2–3 terms, correlated (``(1 + x | g)``, an LKJ prior) or
not (``(1 + x || g)``: lme4's uncorrelated blocks of one factor, integrated as one block,
:func:`merged_design`), is integrated by the product rule, η_i = base_i + xr_iᵀ diag(s) L u with u ~ N(0, I)
(:class:`~bayesglmm.bayes.agq_op.AGQVectorMarginal`: nagq^k nodes per group, so it costs more
per gradient than the scalar case).

NUTS then samples (β, s[, correlation]) alone: a handful of parameters, nearly Gaussian, instead
of J more standardised effects in a funnel. Two reparametrisations (the posterior is unchanged)
make it closer to a standard normal for a diagonal mass matrix: β in the frame of the model's
Laplace fit, β = β̂ + C w with C Cᵀ the covariance of β̂ (:func:`beta_frame`), and the SDs by
s = c · softplus(y), logarithmic below the knee c and linear above it (:func:`sd_knee`) instead
of log s, whose left tail is long when an SD's mass reaches towards 0. Afterwards :func:`draw_random_effects` draws each
group's u_j from its conditional posterior given each draw — exactly for one term (rejection
sampling from a piecewise-exponential envelope of the log-concave conditional), and for 2–3
terms exactly by rejection from N(û, I) where that is cheap (the conditional's curvature is at
least the prior's), else by an independence Metropolis–Hastings chain with a multivariate t(4)
proposal at the mode; one Numba loop — so the :class:`~bayesglmm.bayes.posterior.Posterior` has the same
variables (``{label}_z``, ``{label}``) and tables as one of the full model.

Families: Bernoulli and binomial with the logit link, Poisson with the log link (canonical links:
the mode equations' Newton step is Fisher scoring, and the fast paths factorise the exponentials),
and Bernoulli and binomial with the probit and cloglog links (the direct path: every row at every
node by the frequentist AGQ's row function, Fisher scoring for the modes and the Fisher weight for
the curvature, as :func:`bayesglmm.frequentist.agq.agq_loglik` places its nodes; both
log-likelihoods are log-concave, so the conditional draws are exact as for the logit). The
dispersion families — negative binomial (log), beta-binomial (logit, probit, cloglog), Gamma
(log) — take the direct path with their dispersion φ (θ, the shape) as one more input of the Op,
sampled exactly as the full model samples it (:func:`bayesglmm.bayes.model.dispersion_variable`:
``dispersion_scale`` = 1/√φ with the prior ``priors.dispersion``, the deterministic ``theta`` or
``shape``), the value's gradient in φ compiled with the nodes held fixed as for β; the nodes are
placed by the family's Fisher weight, as the frequentist AGQ places them (the values agree to
1e-12). The NB and Gamma (log) log-likelihoods are log-concave in η, so their draws are exact; the
beta-binomial's is not everywhere for n > 1 (the rejection envelope's tangents may then cut the
conditional). The Gamma's inverse link is refused: η ≤ 0 lies outside its mean's range. A Gaussian response with the identity link (a
linear mixed model) needs no quadrature: y_j ~ N(X_j β, σ² I + Z_j Σ Z_jᵀ) exactly, evaluated from
per-group sufficient statistics by k × k matrices (:func:`gaussian_marginal_loglik`; any number of
terms, any number of rows at the same cost per gradient), NUTS samples (β, SDs, correlation, σ),
and the random effects are drawn exactly from their Gaussian conditionals
(:func:`draw_gaussian_effects`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import disconnected_grad

from ..design import distinct_groups
from ..frequentist.agq import NAGQ_LADDER, agq_loglik, settle_nagq
from ..frequentist.laplace import laplace_deviance
from ..results import NotApplicableError, SamplingWarning
from .prior_graph import LinearFrame, location_prior, scale_prior

__all__ = ["check_marginalizable", "merged_design", "exact_marginal", "gaussian_statistics", "gaussian_marginal_loglik",
           "draw_gaussian_effects", "GaussianStatistics", "build_marginal_model", "choose_nagq", "nagq_settling",
           "draw_random_effects", "sample_marginalized", "QuadratureWarning", "MODE_STEPS", "reference_fit", "beta_frame",
           "sd_knee", "SD_KNEE"]

#: Newton steps for the modes of the composed reference graph (``marginal_loglik(..., mode_steps=)``;
#: capped at 1 per step, 8 reach 1e-12 from u = 0 on the bundled binary and count data sets); the
#: fused Op iterates to 1e-12 itself
MODE_STEPS = 8


#: the most terms of a random block that ``marginalize=True`` integrates out (the product rule's
#: nodes grow as nagq ** terms)
MAX_TERMS = 3


def exact_marginal(family) -> bool:
    """Whether the random effects integrate out in closed form: a Gaussian response with the
    identity link (a linear mixed model; :func:`gaussian_marginal_loglik`), no quadrature."""
    return family.has_scale and family.canonical


def merged_design(design):
    """The design whose one random block the marginal likelihood integrates: ``design`` itself
    when it has one block; when its blocks share one grouping factor and none has a correlation
    (``(1 + x || g)``: ``1|g`` and ``x|g``), a copy with them as one uncorrelated block, their
    terms in order (Σ diagonal, the SDs those of the blocks); None otherwise (several grouping
    factors, or a correlated block beside others)."""
    import dataclasses

    from ..design import RandomBlock

    blocks = design.random
    if len(blocks) == 1:
        return design
    first = blocks[0]
    if any(b.group != first.group or b.levels != first.levels or not np.array_equal(b.index, first.index)
           or b.has_correlation for b in blocks):
        return None
    block = RandomBlock(group=first.group, terms=tuple(t for b in blocks for t in b.terms), levels=first.levels,
                        index=first.index, Xr=np.column_stack([b.Xr for b in blocks]), correlated=False)
    return dataclasses.replace(design, random=(block,))


def _merged_modes(design, u):
    """Conditional modes in the order of the original design's blocks (block-major, each
    level-major, as the Laplace fit holds them) → level-major over the merged block's terms."""
    J = design.random[0].n_levels
    parts, pos = [], 0
    for b in design.random:
        parts.append(u[pos:pos + J * b.n_terms].reshape(J, b.n_terms))
        pos += J * b.n_terms
    return np.hstack(parts).ravel()


def check_marginalizable(design, family) -> None:
    """Raise ValueError naming what stands in the way of ``marginalize=True``."""
    if not design.random:
        raise NotApplicableError("marginalize=True integrates random effects out, and this model has none "
                                 "(a GLM: sample it with marginalize=False)")
    blocks = ', '.join(f'{b.label} ({b.n_terms} terms)' for b in design.random)
    merged = merged_design(design)
    if merged is None:
        raise NotApplicableError("marginalize=True needs one grouping factor with one random block, e.g. (1 | g) or "
                         f"(1 + x | g), or uncorrelated blocks of it, (1 + x || g); this model has {blocks}")
    if exact_marginal(family):
        return
    from .quadrature import AGQ_CODES

    if family.has_scale or family.kernel_code not in AGQ_CODES:
        raise NotApplicableError(f"marginalize=True is available for bernoulli/binomial and betabinomial (logit, probit, "
                         f"cloglog), poisson and negativebinomial (log), gamma (log) and gaussian (identity) models, "
                         f"not {family.name} with the {family.link.name} link")
    if merged.random[0].n_terms > MAX_TERMS:
        raise NotApplicableError(f"marginalize=True integrates a {family.name} model's random block by quadrature, for at most "
                         f"{MAX_TERMS} terms (the product rule's nodes grow as nagq ** terms); this model has {blocks}")


#: candidate node counts for :func:`choose_nagq` (the frequentist AGQ's ladder,
#: :data:`bayesglmm.frequentist.agq.NAGQ_LADDER`), and its tolerance on the log-likelihood: an
#: error δ in the log density changes every posterior expectation of a positive function by a
#: factor within e^{±2δ}, 0.02 % for 1e-4, below the Monte Carlo error of any run short of 10⁶
#: effective draws
NAGQ_CANDIDATES = NAGQ_LADDER[1]
NAGQ_TOL = 1e-4


#: candidates for a block of 2 and 3 terms (the product rule: nagq ** terms nodes per group)
NAGQ_CANDIDATES_VECTOR = {k: NAGQ_LADDER[k] for k in (2, 3)}


class QuadratureWarning(SamplingWarning):
    """``marginalize=True`` chose its nodes automatically and the quadrature did not settle: the
    marginal log-likelihood still moved by more than :data:`NAGQ_TOL` between the two largest
    rules, so the sampled density carries an error of about that size."""


def choose_nagq(model, tol: float = NAGQ_TOL) -> int:
    """The fewest Gauss–Hermite nodes whose marginal log-likelihood is within ``tol`` of the next
    candidate's (:data:`NAGQ_CANDIDATES`), at the Laplace estimate of the SD and 3 standard errors
    above it (where the posterior's upper tail reaches, and the rule is least accurate). Per data
    set, since the need differs a lot: with the default ``tol`` = 1e-4, cbpp and epil 11 nodes,
    bacteria 21, ohio 51 (SD 2.3, four binary records a child). For a block of 2–3 terms, nodes
    per dimension from :data:`NAGQ_CANDIDATES_VECTOR`, at the estimate and with the SDs 1.5 ×.
    When no candidate settles, the largest (see :func:`nagq_settling` for the change left)."""
    return nagq_settling(model, tol)[0]


def nagq_settling(model, tol: float = NAGQ_TOL, fit=None) -> tuple[int, float]:
    """:func:`choose_nagq`'s choice and the change of the marginal log-likelihood from it to the
    next larger rule (for the largest candidate: from the one before it); the choice settled when
    the change is below ``tol``. ohio ``(1 + age | id)``: 21 nodes a dimension, 0.61 from 15 at
    1.5× the SDs (and 0.08 from a 61² rule; binary data, four records a child, an intercept SD of
    2.6): unsettled. ``fit``: the model's Laplace fit, if one is at hand (else fitted here). The
    walk is :func:`bayesglmm.frequentist.agq.settle_nagq`, as ``fit("agq")``'s."""
    import warnings

    from scipy.linalg import block_diag

    check_marginalizable(model.design, model.family)
    if exact_marginal(model.family):
        raise NotApplicableError("a gaussian (identity link) model's random effects integrate out exactly: there are no "
                         "quadrature nodes to choose")
    if fit is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = model.fit("laplace")
    dev, tmap = laplace_deviance(model.design, model.family)
    design = merged_design(model.design)
    k = design.random[0].n_terms
    if k == 1:
        s_hat = max(float(fit.theta[0]), 0.1)
        se = float(np.sqrt(fit.vcov_full[0, 0])) if fit.vcov_full is not None else np.nan
        thetas = [np.array([s]) for s in (s_hat, s_hat + 3 * se if np.isfinite(se) else 1.5 * s_hat)]
        candidates = NAGQ_CANDIDATES
    else:
        theta = np.asarray(fit.theta, float)
        thetas, candidates = [theta, 1.5 * theta], NAGQ_CANDIDATES_VECTOR[k]
    family, extra = model.family, []
    if family.has_dispersion:  # at the fit's θ or shape (the deviance's last parameter is its log)
        family, extra = family.with_dispersion(float(fit.dispersion)), [np.log(float(fit.dispersion))]
    points = [(block_diag(*tmap.factors(th)), _merged_modes(model.design, dev.state(np.r_[th, fit.beta, extra]).u))
              for th in thetas]

    def values(q):
        return [agq_loglik(design, family, L, fit.beta, u, q) for L, u in points]

    return settle_nagq(values, candidates, tol)


def reference_fit(model):
    """The model's Laplace fit (its ML fit for a linear mixed model), warnings silenced, or None
    when it fails: where :func:`nagq_settling` tests the quadrature and :func:`beta_frame` centres
    β's frame."""
    import warnings

    from ..results import FitFailedError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return model.fit("laplace")
        except (FitFailedError, np.linalg.LinAlgError, FloatingPointError):
            return None


def beta_frame(fit) -> LinearFrame | None:
    """The linear frame NUTS samples β in on the marginal model: β = β̂ + C w with C Cᵀ the fit's
    covariance of β̂ (:class:`~bayesglmm.bayes.prior_graph.LinearFrame`; β's prior and posterior are
    unchanged). The marginal posterior's β are as correlated as the estimates (Contraception: the
    intercept with the three columns of ``livch``, −0.54 to −0.73; age with age², condition number
    27 over all ten parameters), which a diagonal mass matrix cannot undo: in this frame nutpie
    took 6.9 leapfrog steps a draw where it took 9.3, with 1.3–1.6× the ESS per draw. None (β as
    it is) without a fit, a fixed-effect column or a positive definite covariance."""
    if fit is None or len(fit.beta) == 0:
        return None
    beta, vcov = np.asarray(fit.beta, dtype=float), np.asarray(fit.vcov, dtype=float)
    if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(vcov))):
        return None
    try:
        chol = np.linalg.cholesky((vcov + vcov.T) / 2.0)
    except np.linalg.LinAlgError:
        return None
    return LinearFrame(beta, chol)


#: where the marginal model's SD transform turns from logarithmic to linear
#: (:class:`~bayesglmm.bayes.prior_graph.SoftplusScale`), on the linear predictor's scale
SD_KNEE = 0.25


def sd_knee(design, family, fit) -> float:
    """The knee of the SDs' transform on the marginal model: :data:`SD_KNEE` on the linear
    predictor's scale (logit, log), times the fit's residual SD for a linear mixed model (its SDs
    are in the response's units; the response's SD without a fit). Measured with nutpie against
    log s: Contraception ``(urban | district)`` bulk ESS of the smallest SD 2,068–2,303 against
    1,248–2,185 over four seeds (similar for knees 0.1 and 0.4), ohio ``(1 + age | id)`` 927–1,064
    against 348–662 with 9.3 leapfrog steps a draw against 10.7; one-term blocks (cbpp, ohio) alike
    on both."""
    if not family.has_scale:
        return SD_KNEE
    sigma = fit.dispersion if fit is not None else None
    if sigma is None or not np.isfinite(sigma) or sigma <= 0:
        sigma = float(np.std(design.y)) or 1.0
    return SD_KNEE * float(sigma)


def _family_terms(family, y, n):
    """PyTensor (loglik kernel, score and weight) of η, for the canonical links; the kernel takes
    η of shape (rows, nodes)."""
    yc, nc = y[:, None], n[:, None]
    if family.counts_successes:
        def kernel(eta):  # y η − n log(1 + e^η)
            return yc * eta - nc * pt.softplus(eta)

        def score_weight(eta):
            p = pt.sigmoid(eta)
            return y - n * p, n * p * (1.0 - p)
    else:
        def kernel(eta):
            return yc * eta - pt.exp(eta)

        def score_weight(eta):
            mu = pt.exp(eta)
            return y - mu, mu
    return kernel, score_weight


def _group_sum(values, index, n_groups):
    """Σ over the rows of each group: ``values`` (n,) → (J,), or (n, K) → (J, K)."""
    shape = (n_groups,) if values.ndim == 1 else (n_groups, values.shape[1])
    return pt.inc_subtensor(pt.zeros(shape)[index], values)


def graph_data(as_data: bool):
    """``data(name, array)``: an array of the marginal model into its graph, as the shared variable
    ``marginal.{name}`` (``as_data``: models of one structure with other data — another response,
    its distinct groups, another frame — share compiled code, in this process and, from Numba's
    on-disk cache, in later ones) or as a constant."""
    if not as_data:
        return lambda name, value: pt.as_tensor_variable(np.asarray(value))
    return lambda name, value: pytensor.shared(np.array(value), name=f"marginal.{name}")


def marginal_loglik(design, family, beta, sd, nagq: int, mode_steps: int | None = None, chol=None, phi=None,
                    as_data: bool = False):
    """The AGQ marginal log-likelihood (parameter-free constants dropped) as a PyTensor scalar,
    each distinct group pattern computed once (:func:`distinct_groups`), in one fused Op
    (:class:`bayesglmm.bayes.agq_op.AGQMarginal`: modes by Newton to 1e-12, nodes and gradient in
    one loop nest). ``sd`` is the block's SD (a scalar for one term, else a vector of its terms,
    with ``chol`` the Cholesky factor of their correlation or None: the product rule,
    :class:`~bayesglmm.bayes.agq_op.AGQVectorMarginal`). ``mode_steps`` instead composes the
    one-term rule of PyTensor's own ops with that many Newton steps in a ``scan`` (the reference
    the Op is tested against; canonical links only). ``phi``: a dispersion family's θ or shape (a
    scalar tensor, differentiable: the Ops' gradient in it), required for such a family.
    ``as_data``: the data arrays (the distinct groups' rows, the response, the nodes) enter as
    shared variables (:func:`graph_data`), else as constants."""
    if family.has_dispersion and phi is None:
        raise ValueError(f"the {family.name} family's marginal log-likelihood needs its {family.dispersion_name} (phi)")
    phi = 1.0 if phi is None else phi
    if mode_steps is not None:
        return _marginal_loglik_composed(design, family, beta, sd, nagq, mode_steps)
    from .agq_op import agq_kind, agq_marginal, agq_vector_marginal

    rows, idx, counts = distinct_groups(design)
    order = np.argsort(idx, kind="stable")
    rows, idx = rows[order], idx[order]
    start = np.searchsorted(idx, np.arange(len(counts) + 1))
    n = np.ones(len(rows)) if design.trials is None else design.trials[rows].astype(float)
    data = graph_data(as_data)
    base = data("offset", design.offset[rows].astype(float))
    if design.X.shape[1]:
        base = base + pt.dot(data("X", design.X[rows].astype(float)), beta)
    kind = agq_kind(family)
    y = design.y[rows].astype(float)
    k = design.random[0].n_terms
    if k == 1:
        return agq_marginal(kind, base, sd * data("xr", design.random[0].Xr[rows, 0].astype(float)), start, y, n,
                            counts, nagq, phi, data=data)
    # η_i = base_i + xr_iᵀ diag(sd) L u_j = base_i + A_i·u_j with A = (Xr ⊙ sd) L
    A = data("Xr", design.random[0].Xr[rows].astype(float)) * sd[None, :]
    if chol is not None:
        A = pt.dot(A, chol)
    return agq_vector_marginal(kind, base, A, k, start, y, n, counts, nagq, phi, data=data)


def _marginal_loglik_composed(design, family, beta, sd, nagq: int, mode_steps: int):
    rows, idx, counts = distinct_groups(design)
    J = len(counts)
    y = design.y[rows]
    n = np.ones_like(y) if design.trials is None else design.trials[rows].astype(float)
    xr = design.random[0].Xr[rows, 0]
    kernel, score_weight = _family_terms(family, y, n)
    base = pt.as_tensor_variable(design.offset[rows])
    if design.X.shape[1]:
        base = base + pt.dot(pt.as_tensor_variable(design.X[rows]), beta)
    a = sd * xr  # η_i = base_i + a_i u_j
    base_c, a_c = disconnected_grad(base), disconnected_grad(a)  # the modes carry no gradient

    def newton(u, base_c, a_c):  # the parameters enter as non-sequences (PyMC swaps RVs for values there)
        s, w = score_weight(base_c + a_c * u[idx])
        g = _group_sum(a_c * s, idx, J) - u
        h = 1.0 + _group_sum(a_c * a_c * w, idx, J)
        return u + pt.clip(g / h, -1.0, 1.0)

    # one step body in a scan: the graph PyMC rewrites on every sample() stays small
    steps = pytensor.scan(newton, outputs_info=[pt.zeros(J)], non_sequences=[base_c, a_c], n_steps=mode_steps,
                          return_updates=False)
    u = steps[-1]
    _, w = score_weight(base + a * u[idx])
    R = pt.sqrt(1.0 + _group_sum(a * a * w, idx, J))
    u, R = disconnected_grad(u), disconnected_grad(R)
    x, wts = np.polynomial.hermite.hermgauss(nagq)
    nodes = u[:, None] + np.sqrt(2.0) * x[None, :] / R[:, None]            # (J, K)
    eta = base[:, None] + a[:, None] * nodes[idx]                           # (n, K)
    S = _group_sum(kernel(eta), idx, J)                                     # (J, K)
    F = np.log(wts)[None, :] + (x**2)[None, :] + S - 0.5 * nodes**2
    per_group = pt.logsumexp(F, axis=1) + 0.5 * np.log(2.0) - 0.5 * np.log(2 * np.pi) - pt.log(R)
    return pt.sum(counts * per_group)


class GaussianStatistics(NamedTuple):
    """What the exact marginal log-likelihood of a linear mixed model needs of the data, per group
    j of the one random block (Z_j its rows of ``Xr``), about a reference β₀ (least squares of
    y − offset on X, so that r₀ = y − offset − X β₀ is small and r = r₀ − X δ, δ = β − β₀, loses
    no digits): Σ_j Z_jᵀZ_j, Z_jᵀr₀, Z_jᵀX_j, and over all rows r₀ᵀr₀, Xᵀr₀, XᵀX. Its cost per
    evaluation is then O(J k (p + k²)), whatever the number of rows."""

    beta0: np.ndarray   # (p,)
    ZtZ: np.ndarray     # (J, k, k)
    Ztr0: np.ndarray    # (J, k)
    ZtX: np.ndarray     # (J, k, p)
    r0r0: float
    Xtr0: np.ndarray    # (p,)
    XtX: np.ndarray     # (p, p)
    nobs: int


def gaussian_statistics(design) -> GaussianStatistics:
    """The :class:`GaussianStatistics` of a design with one random block."""
    block = design.random[0]
    X, Z, idx, J = np.asarray(design.X, float), np.asarray(block.Xr, float), block.index, block.n_levels
    y0 = np.asarray(design.y, float) - np.asarray(design.offset, float)
    beta0 = np.linalg.lstsq(X, y0, rcond=None)[0] if X.shape[1] else np.zeros(0)
    r0 = y0 - X @ beta0

    def gsum(v):
        return np.bincount(idx, weights=v, minlength=J)

    k, p = Z.shape[1], X.shape[1]
    ZtZ = np.stack([np.stack([gsum(Z[:, a] * Z[:, b]) for b in range(k)], -1) for a in range(k)], 1)
    Ztr0 = np.stack([gsum(Z[:, a] * r0) for a in range(k)], -1)
    ZtX = np.stack([np.stack([gsum(Z[:, a] * X[:, j]) for j in range(p)], -1) if p else np.zeros((J, 0))
                    for a in range(k)], 1)
    return GaussianStatistics(beta0, ZtZ, Ztr0, ZtX, float(r0 @ r0), X.T @ r0, X.T @ X, len(y0))


def _batched_cholesky_solve(P, c):
    """Unrolled Cholesky factors of the k × k matrices P (``P[i][j]``: tensors over the groups) and
    w = L⁻¹c: returns (Σ log diag L, Σ w²), each summed over i, elementwise over the groups."""
    k = len(P)
    L = [[None] * k for _ in range(k)]
    logdet, quad, w = 0.0, 0.0, [None] * k
    for i in range(k):
        for j in range(i + 1):
            v = P[i][j] - sum((L[i][m] * L[j][m] for m in range(j)), start=0.0)
            if i == j:
                L[i][i] = pt.sqrt(v)
            else:
                L[i][j] = v / L[j][j]
        w[i] = (c[i] - sum((L[i][m] * w[m] for m in range(i)), start=0.0)) / L[i][i]
        logdet, quad = logdet + pt.log(L[i][i]), quad + w[i] ** 2
    return logdet, quad


def gaussian_marginal_loglik(stats: GaussianStatistics, beta, Lam, sigma, as_data: bool = False):
    """The exact marginal log-likelihood of a linear mixed model with one random block, as a
    PyTensor scalar (constants included: the log density of y):

        Σ_j log N(y_j; offset_j + X_j β, σ² I + Z_j Λ Λᵀ Z_jᵀ),   Λ = diag(sd) L,

    by the k × k matrices P_j = I + Λᵀ Z_jᵀZ_j Λ / σ² (the determinant lemma and Woodbury's
    identity: log|V_j| = n_j log σ² + log|P_j|, r_jᵀV_j⁻¹r_j = (r_jᵀr_j − c_jᵀP_j⁻¹c_j / σ²) / σ²
    with c_j = Λᵀ Z_jᵀ r_j), from the sufficient statistics ``stats`` (:func:`gaussian_statistics`).
    ``beta`` (p,) or None, ``Lam`` (k, k), ``sigma`` a scalar; ``as_data``: the statistics as
    shared variables (:func:`graph_data`), else constants."""
    J, k, p = stats.ZtX.shape
    data = graph_data(as_data)
    J_ = data("n_groups", np.asarray(J, np.int64))  # the groups' count as data too: (J, k) reshapes
    t = data("Ztr0", stats.Ztr0)
    rr = data("r0r0", np.asarray(stats.r0r0, float))
    if p:
        delta = beta - data("beta0", stats.beta0)
        t = t - pt.dot(data("ZtX", stats.ZtX.reshape(J * k, p)), delta).reshape((J_, k))
        rr = rr - 2.0 * pt.dot(delta, data("Xtr0", stats.Xtr0)) + pt.dot(delta, pt.dot(data("XtX", stats.XtX), delta))
    SL = pt.dot(data("ZtZ", stats.ZtZ.reshape(J * k, k)), Lam).reshape((J_, k, k))  # Z'Z Λ
    A = pt.tensordot(Lam, SL, axes=[[0], [1]])  # (i, J, j): Λᵀ Z'Z Λ
    c = pt.dot(t, Lam)  # (J, k): Λᵀ Z'r
    s2 = sigma**2
    P = [[(1.0 if i == j else 0.0) + A[i, :, j] / s2 for j in range(k)] for i in range(k)]
    logdet, quad = _batched_cholesky_solve(P, [c[:, i] for i in range(k)])
    nobs = data("nobs", np.asarray(float(stats.nobs)))
    return (-0.5 * nobs * np.log(2 * np.pi) - nobs * pt.log(sigma) - pt.sum(logdet)
            - (rr - pt.sum(quad) / s2) / (2.0 * s2))


def draw_gaussian_effects(stats: GaussianStatistics, beta_draws, Lam_draws, sigma_draws, rng,
                          chunk: int = 2_000_000) -> np.ndarray:
    """Exact draws of the standardised effects u_j (b_j = Λ u_j) from their Gaussian conditional
    given each draw of (β, Λ, σ): precision P_j = I + Λᵀ Z_jᵀZ_j Λ / σ², mean P_j⁻¹ c_j / σ².
    Returns (draws, J, k); vectorized over draws in chunks of about ``chunk`` matrix entries."""
    J, k, p = stats.ZtX.shape
    D = len(sigma_draws)
    out = np.empty((D, J, k))
    step = max(1, chunk // (J * k * k))
    eye = np.eye(k)
    for lo in range(0, D, step):
        sl = slice(lo, min(D, lo + step))
        Lam, s2 = Lam_draws[sl], sigma_draws[sl, None, None] ** 2
        t = stats.Ztr0[None] - np.einsum("jap,dp->dja", stats.ZtX, beta_draws[sl] - stats.beta0)
        A = np.einsum("dai,jab,dbc->djic", Lam, stats.ZtZ, Lam)
        P = eye + A / s2[..., None]
        c = np.einsum("dja,dai->dji", t, Lam) / s2
        L = np.linalg.cholesky(P)
        mean = np.linalg.solve(P, c[..., None])[..., 0]
        eps = rng.standard_normal(mean.shape)
        out[sl] = mean + np.linalg.solve(np.swapaxes(L, -1, -2), eps[..., None])[..., 0]  # L⁻ᵀ ε: covariance P⁻¹
    return out


def build_marginal_model(design, family, priors, nagq: int = 15, as_data: bool = True,
                         frame: LinearFrame | None = None, knee: float | None = None) -> pm.Model:
    """The PyMC model of (β, SDs, correlation[, σ]) with the random effects integrated out (see
    the module docstring): by quadrature (``nagq`` nodes), or exactly for a Gaussian response
    with the identity link (:func:`gaussian_marginal_loglik`; ``nagq`` unused).

    The priors are those of :func:`bayesglmm.bayes.model.build_pymc_model`, by the same names
    (``beta``, ``{label}_sd``, ``{label}_corr_chol`` and ``{label}_corr``, ``sigma``); the
    likelihood is a ``pm.Potential`` named ``"marginal_loglik"``. ``frame``: β is sampled in that
    linear frame (:func:`beta_frame`), else as it is; ``knee``: the SDs are sampled by
    :class:`~bayesglmm.bayes.prior_graph.SoftplusScale` with that knee (:func:`sd_knee`), else on log s.
    """
    from .model import block_coords, block_scale, dispersion_variable

    check_marginalizable(design, family)
    merged = merged_design(design)
    coords = {"fixed": list(design.fixed_names)}
    for block in design.random:
        coords.update(block_coords(block))
        coords.pop(f"{block.group}_level")
    k = merged.random[0].n_terms
    with pm.Model(coords=coords) as model:
        if frame is not None and as_data:
            frame = frame.as_data("beta")
        beta = location_prior("beta", priors.fixed, "fixed", "present", as_data, frame=frame,
                              center=priors.center) \
            if design.X.shape[1] else None
        scales = [block_scale(block, sd_priors, corr, "present", as_data, knee=knee)
                  for block, sd_priors, corr in zip(design.random, priors.sd, priors.corr)]
        # one block, or uncorrelated blocks of one factor (merged_design): their SDs side by side
        sd, chol = scales[0] if len(scales) == 1 else (pt.concatenate([s for s, _ in scales]), None)
        if exact_marginal(family):
            sigma = scale_prior("sigma", priors.sigma, None, "present", as_data)
            Lam = sd[:, None] * (chol if chol is not None else np.eye(k))
            pm.Potential("marginal_loglik", gaussian_marginal_loglik(gaussian_statistics(merged), beta, Lam, sigma,
                                                                     as_data))
            return model
        sd = sd[0] if k == 1 else sd
        # a dispersion family's θ or shape: the full model's variables (dispersion_scale, its prior, the
        # deterministic named family.dispersion_name), so that the two posteriors are one
        phi = dispersion_variable(family, priors, "present", as_data) if family.has_dispersion else None
        pm.Potential("marginal_loglik", marginal_loglik(merged, family, beta, sd, nagq, chol=chol, phi=phi,
                                                        as_data=as_data))
    return model


#: Metropolis–Hastings steps for the conditional draws of a vector random effect, where rejection
#: sampling would take more than :data:`VECTOR_REJECTION_MAX` proposals a draw
VECTOR_MH_STEPS = 20
#: the largest √|H| (about the expected number of proposals) for which a vector random effect is
#: drawn exactly by rejection from N(û, I)
VECTOR_REJECTION_MAX = 8.0


def draw_random_effects(design, family, beta_draws, sd_draws, rng, chol_draws=None, chunks: int = 1,
                        workers: int = 1, phi_draws=None) -> np.ndarray:
    """Draws of u (standardised effects) from their conditional posterior given each draw of β
    and the SD(s). One term: exact draws, shape (draws, J), by rejection from a
    piecewise-exponential envelope of the log-concave conditional
    (:func:`bayesglmm.bayes.agq_op.conditional_draws`: one Numba loop, the envelope once per
    distinct group pattern and draw). k terms (``sd_draws`` (draws, k), ``chol_draws`` (draws, k, k)
    the correlation's Cholesky factors or None): shape (draws, J, k), exact draws by rejection from
    N(û, I) (the log conditional's curvature is at least the prior's) where that takes at most
    :data:`VECTOR_REJECTION_MAX` proposals a draw, else an independence MH chain with a
    multivariate t(4) proposal at the mode, :data:`VECTOR_MH_STEPS` steps
    (:func:`~bayesglmm.bayes.agq_op.conditional_draws_vector`). Random numbers from ``rng``: one
    seed for each of ``chunks`` consecutive slices of the draws (:func:`sample_marginalized`: one a
    chain), so the draws do not depend on ``workers``, the threads the slices run in (the kernels
    release the GIL; timings in docs/performance.md, "Measurements behind the design"). ``phi_draws``
    (draws,): a dispersion family's θ or shape at each draw (required for one)."""
    from .agq_op import agq_kind, conditional_draws, conditional_draws_vector

    rows, idx, _, group_pattern = distinct_groups(design, with_groups=True)
    order = np.argsort(idx, kind="stable")
    rows, idx = rows[order], idx[order]
    start = np.searchsorted(idx, np.arange(group_pattern.max() + 2))
    n = np.ones(len(rows)) if design.trials is None else design.trials[rows].astype(float)
    kind = agq_kind(family)
    beta_draws, sd_draws = np.asarray(beta_draws, float), np.asarray(sd_draws, float)
    D = len(sd_draws)
    if family.has_dispersion and phi_draws is None:
        raise ValueError(f"the {family.name} family's random effects need draws of its {family.dispersion_name}")
    phi_draws = np.ones(D) if phi_draws is None else np.ascontiguousarray(np.asarray(phi_draws, float).reshape(D))
    beta_draws = np.ascontiguousarray(beta_draws.reshape(D, -1))
    X, offset, y = np.ascontiguousarray(design.X[rows], dtype=float), design.offset[rows].astype(float), \
        design.y[rows].astype(float)
    k = design.random[0].n_terms
    seeds = [int(v) for v in rng.integers(2**31 - 1, size=max(1, int(chunks)))]
    parts = np.array_split(np.arange(D), len(seeds))
    if k == 1:
        xr, sd_draws = design.random[0].Xr[rows, 0].astype(float), sd_draws.reshape(D)

        def run(part, seed):
            return conditional_draws(X, offset, xr, y, n, start, group_pattern, beta_draws[part], sd_draws[part], seed,
                                     kind, phi_draws[part])
    else:
        xr = np.ascontiguousarray(design.random[0].Xr[rows], dtype=float)
        sd_draws = sd_draws.reshape(D, k)
        Lam = np.ascontiguousarray(sd_draws[:, :, None] * (np.broadcast_to(np.eye(k), (D, k, k)) if chol_draws is None
                                   else np.asarray(chol_draws, float).reshape(D, k, k)))  # diag(sd) L

        def run(part, seed):
            return conditional_draws_vector(X, offset, xr, y, n, start, group_pattern, beta_draws[part], Lam[part],
                                            seed, kind, VECTOR_MH_STEPS, VECTOR_REJECTION_MAX, phi_draws[part])
    if workers > 1 and len(seeds) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(int(workers), len(seeds))) as pool:
            return np.concatenate(list(pool.map(run, parts, seeds)))
    return np.concatenate([run(part, seed) for part, seed in zip(parts, seeds)])


def marginal_structure_key(design, family, priors, framed: bool) -> str:
    """What the graph of :func:`build_marginal_model` (``as_data=True``) holds besides its data:
    family and link, β's coordinates and whether they are sampled in a frame, the blocks' labels,
    terms and correlations, the prior families. Everything else — the response, the design's rows
    (the distinct groups), the nodes, the frame, the knee, the hyperparameters — is shared data,
    so models of one structure fitted to other data share compiled code
    (:func:`bayesglmm.bayes.nuts.sample_nutpie`)."""
    from .compilation import array_digest
    from .model import prior_kinds

    parts = [family.name, family.link.name, "marginal", exact_marginal(family), design.fixed_names, framed,
             merged_design(design).random[0].n_terms]
    for block in design.random:
        parts += [block.label, block.terms, block.has_correlation]
    return array_digest(*parts, *prior_kinds(priors))


def sample_marginalized(model, nagq: int = 25, draws=1000, tune=1000, chains=4, cores=2, random_seed=None,
                        target_accept=0.9, nuts_sampler="nutpie", progressbar=True, fit=None, **kwargs):
    """NUTS on the marginal model, then the random effects drawn from their conditionals; returns
    the DataTree with ``beta``, ``{label}_sd``, ``{label}_z`` and ``{label}`` (and ``sigma``) in its
    posterior. ``nagq`` is unused for a Gaussian response (exact). β is sampled in the frame of
    ``fit`` (:func:`beta_frame`; the model's :func:`reference_fit` when None)."""
    import xarray as xr

    design, family = model.design, model.family
    check_marginalizable(design, family)
    merged = merged_design(design)
    fit = reference_fit(model) if fit is None else fit
    frame, knee = beta_frame(fit), sd_knee(design, family, fit)
    if nuts_sampler == "nutpie":
        from .nuts import sample_nutpie

        key = marginal_structure_key(design, family, model.priors, frame is not None)
        # a handful of parameters, correlated (intercept and its SD, β's of group-level covariates):
        # nutpie's low-rank mass matrix takes 5-6 leapfrog steps a draw where the diagonal one
        # takes 6-9, for 1.6-2x the ESS per second on bacteria and ohio (and steady over 40 short
        # runs). Not with a correlated block: on ohio (1 + age | id) with 200 tuning steps one
        # chain's step size fell to 2e-5 (1000 leapfrog steps a draw); the diagonal one did not
        if merged.random[0].n_terms == 1:
            kwargs.setdefault("adaptation", "low_rank")
        idata = sample_nutpie(lambda as_data: build_marginal_model(design, family, model.priors, nagq, as_data, frame,
                                                                   knee),
                              key, draws=draws, tune=tune, chains=chains, cores=cores, random_seed=random_seed,
                              target_accept=target_accept, progressbar=progressbar, **kwargs)
    else:
        if nuts_sampler == "pymc":  # likewise a dense mass matrix: bacteria 1.9x the ESS/s; on ohio one
            kwargs.setdefault("init", "jitter+adapt_full")  # seed in four took 134 steps a draw with the diagonal
        pmodel = build_marginal_model(design, family, model.priors, nagq=nagq, as_data=nuts_sampler == "pymc",
                                      frame=frame, knee=knee)
        from .nuts import sample_pymc

        idata = sample_pymc(pmodel, draws, tune, chains, cores, random_seed, target_accept, nuts_sampler, progressbar,
                            **kwargs)
    post = idata["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    D, k = n_chain * n_draw, merged.random[0].n_terms
    sd = np.concatenate([post[f"{b.label}_sd"].values.reshape(D, b.n_terms) for b in design.random], axis=1)
    block = design.random[0]  # the one block with a correlation, if any
    chol = post[f"{block.label}_corr_chol"].values.reshape(D, k, k) if block.has_correlation else None
    beta = post["beta"].values.reshape(D, -1) if design.X.shape[1] else np.zeros((D, 0))
    rng = np.random.default_rng(np.random.SeedSequence(random_seed).spawn(1)[0] if random_seed is not None else None)
    if exact_marginal(family):
        Lam = sd[:, :, None] * (chol if chol is not None else np.eye(k))
        u = draw_gaussian_effects(gaussian_statistics(merged), beta, Lam, post["sigma"].values.reshape(D), rng)
    else:
        phi = post[family.dispersion_name].values.reshape(D) if family.has_dispersion else None
        u = draw_random_effects(merged, family, beta, sd if k > 1 else sd[:, 0], rng, chol, chunks=n_chain,
                                workers=cores, phi_draws=phi).reshape(D, -1, k)
    b = np.einsum("dab,djb->dja", chol, u) if chol is not None else u  # b_j = diag(sd) L u_j
    b = b * sd[:, None, :]
    pos = 0
    for block in design.random:  # each block's columns of the merged effects
        cols = slice(pos, pos + block.n_terms)
        pos += block.n_terms
        level_dim, term_dim = f"{block.group}_level", f"{block.label}_term"
        dims = ("chain", "draw", level_dim, term_dim)
        coords = {level_dim: list(block.levels), term_dim: list(block.terms)}
        shape = (n_chain, n_draw, block.n_levels, block.n_terms)
        post = post.assign({f"{block.label}_z": xr.DataArray(u[..., cols].reshape(shape), dims=dims, coords=coords),
                            block.label: xr.DataArray(b[..., cols].reshape(shape), dims=dims, coords=coords)})
    idata["posterior"] = xr.DataTree(post)
    return idata
