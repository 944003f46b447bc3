"""Pointwise log-likelihoods of a posterior, by observation and by group, and leave-one-out by PSIS.

By observation, log p(yᵢ | β, b, φ) at each draw: what ``az.loo`` needs for leaving out one
observation of a group that stays in the fit (a new observation of a known group).

By a grouping factor, each level's **marginal** log-likelihood at each draw,

    log p(y_g | β, Σ, φ) = log ∫ p(y_g | β, b_g, φ) N(b_g; 0, Σ) db_g,

the random effects of that factor integrated out: what leaving out a whole group needs (a new
patient, a new herd). The conditional log-likelihood given the sampled b_g makes PSIS fail there
(the draws of b_g are fitted to y_g: Pareto k > 0.7 for most groups); the marginal one is the one
to use (Merkle, Furr & Rabe-Hesketh 2019). It is computed

- exactly for a Gaussian identity-link model (the multivariate normal of the group's rows:
  σ²I + Z_g Σ Z_gᵀ, by the Woodbury identity, k × k per group);
- otherwise by adaptive Gauss–Hermite quadrature of each group at each draw: the group's mode and
  Fisher curvature by Newton steps (all groups at once), then the product rule over the block's k
  terms (k ≤ 3), its nodes chosen by the frequentist AGQ's ladder until the log-likelihood at the
  posterior means settles to 1e-4 (:func:`choose_group_nagq`) — the frequentist AGQ's per-group
  terms at the same parameters, computed the same way;
- with several grouping factors (crossed or nested), the other factors' effects are taken at their
  draws (conditional on them): the group's likelihood integrates only its own factor's effects.

:func:`loo` hands the matrix to ArviZ's PSIS-LOO and refits the model without each group whose
Pareto k exceeds the threshold (arviz_stats' ``reloo`` with :class:`GroupRefit`), the left-out
group's log predictive density then from the refit's draws, its random effect new and integrated.

References
----------
Merkle, E. C., Furr, D. and Rabe-Hesketh, S. (2019). Bayesian comparison of latent variable models:
conditional versus marginal likelihoods. Psychometrika 84, 802–829.
Vehtari, A., Gelman, A. and Gabry, J. (2017). Practical Bayesian model evaluation using leave-one-out
cross-validation and WAIC. Statistics and Computing 27, 1413–1432.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.loo.wrapper import SamplingWrapper
from scipy import sparse
from scipy.special import logsumexp

__all__ = ["ParameterDraws", "parameter_draws", "observation_loglik", "group_loglik", "group_rows",
           "marginal_group_loglik", "choose_group_nagq", "loo", "GroupRefit", "loo_compare", "GROUP_NAGQ_TOL"]

#: the change of the group log-likelihoods' sum at the posterior means below which a rule is taken
GROUP_NAGQ_TOL = 1e-4


class ParameterDraws:
    """A posterior's draws stacked to (S, ...) with S = chains × draws: ``beta`` (S, p), per random
    block its effects ``effects[k]`` (S, J, t) and factor ``factors[k]`` (S, t, t) with Σ = L Lᵀ
    (diag(sd) times the LKJ Cholesky factor), and ``second`` (S,): the Gaussian σ or a dispersion
    family's θ or shape (None otherwise). ``shape`` is (chains, draws)."""

    def __init__(self, post):
        model = post.model
        design, family = model.design, model.family
        posterior = post.idata["posterior"]
        self.shape = (posterior.sizes["chain"], posterior.sizes["draw"])
        S = self.shape[0] * self.shape[1]

        def flat(name):
            return np.asarray(posterior[name].values, dtype=float).reshape((S,) + posterior[name].shape[2:])

        self.beta = flat("beta") if design.fixed_names else np.zeros((S, 0))
        self.effects, self.factors = [], []
        for block in design.random:
            self.effects.append(flat(block.label))
            sd = flat(f"{block.label}_sd")
            if block.has_correlation:
                chol = np.linalg.cholesky(flat(f"{block.label}_corr") + 1e-12 * np.eye(block.n_terms))
                self.factors.append(sd[:, :, None] * chol)
            else:
                self.factors.append(sd[:, :, None] * np.eye(block.n_terms)[None])
        if family.has_scale:
            self.second = flat("sigma")
        elif family.has_dispersion:
            self.second = flat(family.dispersion_name)
        else:
            self.second = None
        self.n = S


def parameter_draws(post) -> ParameterDraws:
    """The :class:`ParameterDraws` of a posterior."""
    return ParameterDraws(post)


def _eta(design, pd_: ParameterDraws, s: slice, skip=()) -> np.ndarray:
    """η at draws ``s`` (S_s, n), the blocks whose positions are in ``skip`` left out."""
    eta = design.offset[None, :] + pd_.beta[s] @ design.X.T
    for k, block in enumerate(design.random):
        if k in skip:
            continue
        b = pd_.effects[k][s]  # (S_s, J, t)
        eta = eta + np.einsum("sit,it->si", b[:, block.index, :], block.Xr)
    return eta


def _second(pd_: ParameterDraws, s: slice):
    return None if pd_.second is None else pd_.second[s][:, None]


def observation_loglik(post, chunk: int = 200) -> xr.DataArray:
    """log p(yᵢ | β, b, φ) at every draw: a DataArray (chain, draw, obs)."""
    model = post.model
    design, family = model.design, model.family
    draws = parameter_draws(post)
    out = np.empty((draws.n, design.nobs))
    for start in range(0, draws.n, chunk):
        s = slice(start, min(start + chunk, draws.n))
        eta = _eta(design, draws, s)
        out[s] = family.loglik_obs(design.y[None, :], family.link.inverse(eta),
                                   None if design.trials is None else design.trials[None, :], _second(draws, s))
    return xr.DataArray(out.reshape(draws.shape + (design.nobs,)), dims=("chain", "draw", "obs"),
                        coords={"chain": np.arange(draws.shape[0]), "draw": np.arange(draws.shape[1]),
                                "obs": np.arange(design.nobs)})


class GroupRows:
    """The rows of a grouping factor's levels and the columns its effects multiply: ``index`` (n,) the
    level of each row, ``Xr`` (n, k) its blocks' columns side by side, ``blocks`` their positions in
    the design, ``levels`` the factor's levels, ``terms`` (block, term) pairs."""

    def __init__(self, design, factor):
        from ..design import group_index

        self.blocks = [k for k, b in enumerate(design.random) if b.group == factor]
        if self.blocks:
            first = design.random[self.blocks[0]]
            self.index, self.levels = np.asarray(first.index), list(first.levels)
            self.Xr = np.column_stack([design.random[k].Xr for k in self.blocks])
        elif all(c in design.data.columns for c in factor.split(":")):
            # a column the model has no random effects for (complete or no pooling): its groups' rows, whose
            # log-likelihood has nothing to integrate
            levels, index = group_index(design.data, tuple(factor.split(":")))
            self.index, self.levels = np.asarray(index), list(levels)
            self.Xr = np.zeros((len(self.index), 0))
        else:
            factors = list(dict.fromkeys(b.group for b in design.random))
            raise ValueError(f"by={factor!r} names no grouping factor of the model ({', '.join(factors) or 'none'}) "
                             "nor a column of its data (or by='observation')")
        self.sizes = [design.random[k].n_terms for k in self.blocks]
        self.n_levels = len(self.levels)
        self.k = int(sum(self.sizes))
        n = len(self.index)
        self.summer = sparse.csr_matrix((np.ones(n), (self.index, np.arange(n))), shape=(self.n_levels, n))

    def factor(self, draws: ParameterDraws, s) -> np.ndarray:
        """The block-diagonal factor L of the factor's effects at draw ``s``, (k, k)."""
        L = np.zeros((self.k, self.k))
        pos = 0
        for k, size in zip(self.blocks, self.sizes):
            L[pos:pos + size, pos:pos + size] = draws.factors[k][s]
            pos += size
        return L

    def sum(self, v: np.ndarray) -> np.ndarray:
        """Per-level sums over the rows of ``v`` (n, ...) → (J, ...)."""
        flat = v.reshape(len(self.index), -1)
        return np.asarray(self.summer @ flat).reshape((self.n_levels,) + v.shape[1:])


def group_rows(design, factor) -> GroupRows:
    """The :class:`GroupRows` of ``factor`` in ``design``."""
    return GroupRows(design, factor)


def marginal_group_loglik(family, y, trials, base, A, rows: GroupRows, nagq: int, second=None) -> np.ndarray:
    """Each level's marginal log-likelihood at one parameter value: ∫ p(y_g | η = base + A u) N(u; 0, I) du
    (A = Xr L, so b = L u), (J,). Gaussian identity link: exact (``second`` is σ); otherwise AGQ with
    ``nagq`` nodes per dimension at each level's mode (``second``: a dispersion family's θ or shape)."""
    from ..frequentist.agq import product_rule

    J, k = rows.n_levels, rows.k
    idx = rows.index
    if k == 0:  # no random effect of this factor: the rows' conditional log-likelihood, summed
        fam = family.with_dispersion(float(second)) if family.has_dispersion else family
        return rows.sum(fam.loglik_obs(y, fam.link.inverse(base), trials, second if family.has_scale else None))
    if family.has_scale and family.canonical:  # a linear mixed model: the multivariate normal, exactly
        s2 = float(second) ** 2
        r = y - base
        AtA = rows.sum(A[:, :, None] * A[:, None, :])  # (J, k, k)
        Atr = rows.sum(A * r[:, None])  # (J, k)
        rr = rows.sum(r**2)
        n_g = rows.sum(np.ones_like(r))
        M = s2 * np.eye(k)[None] + AtA
        sign, logdet = np.linalg.slogdet(np.eye(k)[None] + AtA / s2)
        quad = (rr - np.einsum("ja,ja->j", Atr, np.linalg.solve(M, Atr[:, :, None])[:, :, 0])) / s2
        return -0.5 * (n_g * np.log(2 * np.pi * s2) + logdet + quad)
    fam = family.with_dispersion(float(second)) if family.has_dispersion else family
    U = np.zeros((J, k))
    eye = np.eye(k)[None]

    def objective(U):
        eta = base + np.einsum("ik,ik->i", A, U[idx])
        return rows.sum(fam.loglik_obs(y, fam.link.inverse(eta), trials)) - 0.5 * np.sum(U**2, axis=1)

    f = objective(U)
    for _ in range(100):
        eta = base + np.einsum("ik,ik->i", A, U[idx])
        wk = fam.working(eta, y, trials)
        g = rows.sum(wk.score[:, None] * A) - U
        H = eye + rows.sum(wk.weight[:, None, None] * A[:, :, None] * A[:, None, :])
        step = np.linalg.solve(H, g[:, :, None])[:, :, 0]
        t = np.ones(J)
        for _ in range(40):  # halve each level's step until its objective does not fall
            new = objective(U + t[:, None] * step)
            bad = ~(new >= f - 1e-12 * (1 + np.abs(f)))
            if not bad.any():
                break
            t = np.where(bad, t / 2, t)
        U, f = U + t[:, None] * step, new
        if np.max(np.abs(t[:, None] * step)) < 1e-10:
            break
    eta = base + np.einsum("ik,ik->i", A, U[idx])
    wk = fam.working(eta, y, trials)
    H = eye + rows.sum(wk.weight[:, None, None] * A[:, :, None] * A[:, None, :])
    R = np.linalg.cholesky(H)
    Rinv_T = np.transpose(np.linalg.inv(R), (0, 2, 1))
    X, logw = product_rule(nagq, k)
    B = np.sqrt(2.0) * np.einsum("iba,ib->ia", Rinv_T[idx], A)  # η at node x: η̂ + B x
    eta_x = eta[None, :] + X @ B.T  # (K, n)
    ll = fam.loglik_obs(y[None, :], fam.link.inverse(eta_x), None if trials is None else trials[None, :])
    Ux = U[None, :, :] + np.sqrt(2.0) * np.tensordot(X, Rinv_T, axes=(1, 2))  # (K, J, k)
    F = logw[:, None] + np.asarray(rows.summer @ ll.T).T - 0.5 * np.sum(Ux**2, axis=2)
    logdetR = np.sum(np.log(np.diagonal(R, axis1=1, axis2=2)), axis=1)
    return logsumexp(F, axis=0) + 0.5 * k * np.log(2.0) - 0.5 * k * np.log(2 * np.pi) - logdetR


def _group_inputs(design, rows: GroupRows, draws: ParameterDraws, s: int):
    """(base, A, second) of draw ``s``: the other factors' effects in the base."""
    base = _eta(design, draws, slice(s, s + 1), skip=set(rows.blocks))[0]
    A = rows.Xr @ rows.factor(draws, s) if rows.k else rows.Xr
    return base, A, None if draws.second is None else draws.second[s]


def choose_group_nagq(post, factor, tol: float = GROUP_NAGQ_TOL) -> int | None:
    """The fewest nodes per dimension of the frequentist AGQ's ladder whose group log-likelihoods, summed, at
    the draw nearest the posterior means move by less than ``tol`` to the next rule (checked also at the
    draw with the largest SDs); None for an exact (Gaussian) model."""
    from ..frequentist.agq import NAGQ_LADDER

    model = post.model
    design, family = model.design, model.family
    rows = group_rows(design, factor)
    if (family.has_scale and family.canonical) or rows.k == 0:
        return None
    if rows.k > 3:
        raise ValueError(f"the group log-likelihood integrates at most 3 random terms of one factor by quadrature; "
                         f"{factor!r} has {rows.k}")
    draws = parameter_draws(post)
    size = np.array([np.sum(rows.factor(draws, s) ** 2) for s in range(draws.n)])
    picks = {int(np.argmin(np.abs(size - np.median(size)))), int(np.argmax(size))}
    ladder = NAGQ_LADDER[rows.k]
    for q, nxt in zip(ladder, ladder[1:]):
        worst = 0.0
        for s in picks:
            base, A, second = _group_inputs(design, rows, draws, s)
            a = marginal_group_loglik(family, design.y, design.trials, base, A, rows, q, second).sum()
            b = marginal_group_loglik(family, design.y, design.trials, base, A, rows, nxt, second).sum()
            worst = max(worst, abs(a - b))
        if worst < tol:
            return q
    return ladder[-1]


def group_loglik(post, factor, nagq: int | None = None) -> xr.DataArray:
    """Each level's marginal log-likelihood at every draw: a DataArray (chain, draw, ``factor``) with the
    levels as coordinates (see the module docstring); ``attrs["nagq"]`` the nodes per dimension (None:
    exact)."""
    model = post.model
    design, family = model.design, model.family
    rows = group_rows(design, factor)
    if nagq is None:
        nagq = choose_group_nagq(post, factor)
    draws = parameter_draws(post)
    out = np.empty((draws.n, rows.n_levels))
    y, trials, sel, pattern, patterns = design.y, design.trials, None, None, rows
    if rows.k and len(design.random) == 1:
        # groups with identical data have identical marginal likelihoods: each pattern once (ohio: 537
        # children, 32 patterns), as the frequentist AGQ and marginalize=True do
        from ..design import distinct_groups

        sel, index, _, pattern = distinct_groups(design, with_groups=True)
        patterns = _Rows(index, int(pattern.max()) + 1, rows.Xr[sel])
        y, trials = y[sel], None if trials is None else trials[sel]
    for s in range(draws.n):
        base, A, second = _group_inputs(design, rows, draws, s)
        if sel is None:
            out[s] = marginal_group_loglik(family, y, trials, base, A, rows, nagq, second)
        else:
            out[s] = marginal_group_loglik(family, y, trials, base[sel], A[sel], patterns, nagq, second)[pattern]
    da = xr.DataArray(out.reshape(draws.shape + (rows.n_levels,)), dims=("chain", "draw", factor),
                      coords={"chain": np.arange(draws.shape[0]), "draw": np.arange(draws.shape[1]),
                              factor: [str(v) for v in rows.levels]})
    da.attrs["nagq"] = nagq
    da.attrs["integrated"] = ("nothing (no random effect of the factor)" if rows.k == 0 else "exact" if nagq is None
                              else f"adaptive Gauss-Hermite, {nagq} nodes per dimension")
    return da


class _Rows:
    """The minimal :class:`GroupRows` that :func:`marginal_group_loglik` reads: rows' ``index`` into
    ``n_levels`` groups, their columns ``Xr``, the per-group sums."""

    def __init__(self, index, n_levels, Xr):
        self.index, self.n_levels, self.Xr, self.k = np.asarray(index), n_levels, Xr, Xr.shape[1]
        n = len(self.index)
        self.summer = sparse.csr_matrix((np.ones(n), (self.index, np.arange(n))), shape=(n_levels, n))

    def sum(self, v):
        return np.asarray(self.summer @ v.reshape(v.shape[0], -1)).reshape((self.n_levels,) + v.shape[1:])


def left_out_group_loglik(post, rows_data: pd.DataFrame, y, trials, factor, nagq) -> np.ndarray:
    """The marginal log-likelihood of one group's rows (``rows_data``, responses ``y``, ``trials``) at every draw
    of ``post``, a posterior fitted without them: the group's effects new, integrated; the other factors'
    effects at their draws where their level was fitted, else 0. Returns (S,)."""
    model = post.model
    design, family = model.design, model.family
    try:
        new = design.evaluate_new(rows_data, allow_new_levels=True, random_effects=True)
    except (KeyError, ValueError) as err:
        from ..results import NotApplicableError

        raise NotApplicableError(f"the model refitted without a {factor} cannot predict it ({err}): with a fixed "
                                 f"effect per {factor} (no pooling) a new {factor} has no prediction; loo(reloo=False) "
                                 "keeps PSIS and its Pareto k") from err
    draws = parameter_draws(post)
    mine = [k for k, b in enumerate(design.random) if b.group == factor]
    Xr = np.column_stack([new.Xr[k] for k in mine])
    one = _Rows(np.zeros(len(Xr), dtype=int), 1, Xr)  # the left-out group's rows, one group
    out = np.empty(draws.n)
    y = np.asarray(y, dtype=float)
    for s in range(draws.n):
        base = new.offset + new.X @ draws.beta[s]
        for k, (index, Xr) in enumerate(zip(new.index, new.Xr)):
            if k in mine:
                continue
            b = np.vstack([draws.effects[k][s], np.zeros((1, Xr.shape[1]))])  # row −1: a level not fitted → 0
            base = base + np.sum(b[index] * Xr, axis=1)
        L = np.zeros((one.k, one.k))
        pos = 0
        for k in mine:
            size = design.random[k].n_terms
            L[pos:pos + size, pos:pos + size] = draws.factors[k][s]
            pos += size
        second = None if draws.second is None else draws.second[s]
        out[s] = marginal_group_loglik(family, y, trials, base, one.Xr @ L, one, nagq, second)[0]
    return out


def _loglik_tree(post, da: xr.DataArray, name: str) -> xr.DataTree:
    """A DataTree with the posterior and ``da`` as the log-likelihood variable ``name`` (what ArviZ's loo reads)."""
    return xr.DataTree.from_dict({"posterior": post.idata["posterior"].to_dataset(),
                                  "log_likelihood": xr.Dataset({name: da})})


class GroupRefit(SamplingWrapper):
    """arviz_stats' ``SamplingWrapper`` for leaving out one level of a grouping factor: the model refitted
    on the other levels' rows with the original sampler's settings, the left-out level's marginal log
    predictive density from the refit's draws (:func:`left_out_group_loglik`). Built by :func:`loo`."""

    def __init__(self, post, factor, by_level: xr.DataArray, sample_kwargs: dict, nagq, progress=None):
        super().__init__(post.model, idata_orig=_loglik_tree(post, by_level, post.model.design.response),
                         sample_kwargs=sample_kwargs)
        self.post, self.factor, self.nagq = post, factor, nagq
        self.rows = group_rows(post.model.design, factor)
        self.refits, self.compilations, self.progress = [], [], progress

    def sel_observations(self, idx):
        design = self.post.model.design
        idx = int(np.asarray(idx).ravel()[0]) if not isinstance(idx, dict) else \
            self.rows.levels.index(next(iter(idx.values())))
        keep = self.rows.index != idx
        data = design.data
        excluded = (self.rows.levels[idx], data.loc[~keep], design.y[~keep],
                    None if design.trials is None else design.trials[~keep])
        return data.loc[keep], excluded

    def sample(self, modified_observed_data):
        from .compilation import count_compilations

        model = self.post.model.update(data=modified_observed_data)
        with count_compilations() as count:
            post = model.sample(**self.sample_kwargs)
        self.compilations.append(int(count.n))
        if self.progress is not None:
            self.progress.update(1)
        return post

    def get_inference_data(self, fitted_model):
        self.refits.append(fitted_model)
        return fitted_model

    def log_likelihood__i(self, excluded_obs, idata__i):
        level, rows_data, y, trials = excluded_obs
        post = idata__i
        values = left_out_group_loglik(post, rows_data, y, trials, self.factor, self.nagq)
        shape = (post.idata["posterior"].sizes["chain"], post.idata["posterior"].sizes["draw"], 1)
        return xr.DataArray(values.reshape(shape), dims=("chain", "draw", self.factor),
                            coords={self.factor: [str(level)]})


def _sample_settings(post) -> dict:
    """The settings a posterior was sampled with (kept in its posterior's attrs by ``sample``), for refits."""
    attrs = post.idata["posterior"].attrs
    keys = ("draws", "tune", "chains", "nuts_sampler", "target_accept", "marginalize")
    out = {k: attrs[f"bayesglmm_{k}"] for k in keys if f"bayesglmm_{k}" in attrs}
    out.setdefault("draws", post.idata["posterior"].sizes["draw"])
    out.setdefault("chains", post.idata["posterior"].sizes["chain"])
    if "marginalize" in out:
        out["marginalize"] = bool(out["marginalize"])
    out.update(progressbar=False, diagnose=False)
    return out


def loo(post, by: str = "observation", reloo: bool = True, k_threshold: float = 0.7, nagq: int | None = None,
        random_seed=None, progress: bool = True):
    """PSIS leave-one-out of a posterior, by observation or by a grouping factor (``by``): ArviZ's ELPD result
    (``elpd``, ``se``, ``p``, pointwise ``elpd_i`` and ``pareto_k``). By a factor, the groups whose Pareto k
    exceeds ``k_threshold`` are refitted without the group (``reloo=False``: kept, flagged by ArviZ's
    warning); the result's ``refits`` counts them and ``compilations`` the compilations they cost."""
    import arviz as az

    if by == "observation":
        da = observation_loglik(post)
        factor = None
    else:
        da = group_loglik(post, by, nagq=nagq)
        factor = by
    name = post.model.design.response  # the variable (its dims: chain, draw and obs or the factor)
    with warnings.catch_warnings():  # ArviZ's warning of high k: said below, once, with what is done about it
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        result = az.loo(_loglik_tree(post, da, name), var_name=name, pointwise=True)
    result.refits, result.compilations = 0, []
    result.by = by
    if factor is None or not reloo or not np.any(np.asarray(result.pareto_k) > k_threshold):
        _warn_high_k(result, by, k_threshold, refitted=False)
        return result
    from arviz_stats import reloo as arviz_reloo

    settings = _sample_settings(post)
    settings["random_seed"] = random_seed
    bad = int(np.sum(np.asarray(result.pareto_k) > k_threshold))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=bad, desc=f"refitting without {bad} {factor} level(s) with Pareto k > {k_threshold}")
    wrapper = GroupRefit(post, factor, da, settings, da.attrs.get("nagq"), progress=bar)
    out = arviz_reloo(wrapper, loo_orig=result, var_name=name, k_threshold=k_threshold, pointwise=True)
    if bar is not None:
        bar.close()
    out.refits, out.compilations, out.by = len(wrapper.refits), wrapper.compilations, by
    return out


def _warn_high_k(result, by, k_threshold, refitted: bool) -> None:
    """One warning naming how many Pareto k exceed ``k_threshold`` (PSIS unreliable there) and what to do."""
    k = np.asarray(result.pareto_k)
    bad = int(np.sum(k > k_threshold))
    if not bad:
        return
    unit = "observation(s)" if by == "observation" else f"{by} level(s)"
    how = ("refit without them: loo(reloo=True)" if by != "observation" else
           "leave whole groups out (by=<factor>), where the marginal likelihood keeps k low, or refit")
    warnings.warn(f"PSIS-LOO: Pareto k > {k_threshold:g} for {bad} of {k.size} {unit} (max {np.nanmax(k):.2f}): the "
                  f"importance sampling is unreliable there; {how}", UserWarning, stacklevel=4)


def loo_compare(posteriors: dict, by: str = "observation", reloo: bool = True, **kwargs) -> pd.DataFrame:
    """:func:`loo` of each posterior and ArviZ's comparison table (elpd, its SE, the difference to the best
    and its SE, weights), the models ranked; refuses posteriors of different data or, by a factor, grouped
    differently. See :func:`bayesglmm.loo_compare`."""
    import arviz as az

    if not isinstance(posteriors, dict) or len(posteriors) < 2:
        raise ValueError("loo_compare needs a dict of at least two posteriors, {label: posterior}")
    items = list(posteriors.items())
    ref_label, ref = items[0]
    for label, post in items:
        if not hasattr(post, "idata") or not hasattr(post, "model"):
            raise TypeError(f"posteriors[{label!r}] is not a Posterior (got {type(post).__name__}); ML fits compare "
                            "with bg.compare_models")
        d0, d = ref.model.design, post.model.design
        if d.nobs != d0.nobs or not np.array_equal(d.y, d0.y) or not (
                (d.trials is None and d0.trials is None) or np.array_equal(d.trials, d0.trials)):
            raise ValueError(f"posteriors {ref_label!r} and {label!r} were fitted to different data (responses "
                             "differ): their ELPDs are not comparable")
        if by != "observation":
            r0, r = group_rows(d0, by), group_rows(d, by)
            if r.levels != r0.levels or not np.array_equal(r.index, r0.index):
                raise ValueError(f"posteriors {ref_label!r} and {label!r} group the rows differently by {by!r}: "
                                 "leave-one-group-out ELPDs are not comparable")
    elpds = {label: loo(post, by=by, reloo=reloo, **kwargs) for label, post in items}
    table = az.compare(elpds, round_to="none")  # the numbers, not their display
    table.attrs["loo"] = elpds
    table.attrs["by"] = "leave one observation out" if by == "observation" else f"leave one {by} out"
    return table
