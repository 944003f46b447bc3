"""The user-facing :class:`GLMM`: a formula, data, a family and priors, validated once."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from .design import Design, make_design
from .families import Family, get_family
from .priors import ResolvedPriors, resolve_priors

__all__ = ["GLMM"]


def check_sampler_kwargs(kwargs: dict, nuts_sampler: str) -> None:
    """Refuse a keyword argument of :meth:`GLMM.sample` that neither it nor the sampler takes, naming the
    accepted ones: PyMC's ``pm.sample`` and its NUTS step's (``max_treedepth``, ``step_scale``, …), or
    nutpie's ``sample`` and its settings (``maxdepth``, …: checked by nutpie's own settings object)."""
    import inspect

    if not kwargs:
        return
    ours = {"draws", "tune", "chains", "random_seed", "cores", "target_accept", "nuts_sampler", "progressbar",
            "diagnose", "marginalize", "nagq", "log_likelihood"}
    if nuts_sampler == "nutpie":
        import nutpie
        from nutpie import _lib

        params = {p.name for p in inspect.signature(nutpie.sample).parameters.values()
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"compiled_model", "seed", "progress_bar"}
        settings = {k: v for k, v in kwargs.items() if k not in params}
        try:  # nutpie passes the other names to its settings, which refuse what they do not have
            _lib.PyNutsSettings.Diag(0).update(settings)
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise TypeError(f"sample() got unexpected keyword argument(s) {', '.join(map(repr, sorted(settings)))}: not "
                            f"sample()'s ({', '.join(sorted(ours))}) nor nutpie.sample's "
                            f"({', '.join(sorted(params))}) or its settings ({err})") from None
        return
    import pymc as pm
    from pymc.step_methods.hmc.base_hmc import BaseHMC

    accepted = set()
    for fn in (pm.sample, pm.NUTS.__init__, BaseHMC.__init__):
        accepted |= {p.name for p in inspect.signature(fn).parameters.values()
                     if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    accepted -= {"self", "vars", "model", "return_inferencedata"} | ours
    if nuts_sampler in ("numpyro", "blackjax"):
        accepted.add("nuts")
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise TypeError(f"sample() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}: not "
                        f"sample()'s ({', '.join(sorted(ours))}) nor pm.sample's or its NUTS's "
                        f"({', '.join(sorted(accepted))})")


class GLMM:
    """A generalized linear mixed model, written as in lme4 or bambi.

    Parameters
    ----------
    formula : str
        lme4-style formula: ``"y ~ x + (1 + x | g)"`` (correlated intercept and slope),
        ``(1 + x || g)`` or ``(1 | g) + (0 + x | g)`` (uncorrelated), ``(1 | farm/group)``
        (nested), ``(1 | a) + (1 | b)`` (crossed), ``C(x)`` or string columns for
        categorical predictors, ``offset(np.log(t))``; binomial responses with trials as
        ``p(successes, trials)`` (bambi) or ``cbind(successes, failures)`` (lme4).
    data : pandas.DataFrame
        Never modified.
    family : {"gaussian", "bernoulli", "binomial", "poisson"}
    link : str, optional
        ``"logit"``, ``"probit"``, ``"cloglog"`` (Bernoulli, binomial); ``"log"``,
        ``"identity"`` (Poisson, Gaussian). Defaults to the canonical link.
    priors : dict, optional
        Overrides of the default priors; keys and the default rule are documented in
        :mod:`bayesglmm.priors`. Flat or improper priors on variance components are refused.
    missing : {"raise", "drop"}
        What to do with NaN/inf in a column the formula uses.

    Attributes
    ----------
    design : Design
        The parsed model matrices, shared by every engine.
    family : Family
    priors : ResolvedPriors
    prior_overrides : dict
        The ``priors`` given (a copy), which :meth:`update` carries to a new data set.
    missing : str

    Examples
    --------
    >>> import bayesglmm as bg
    >>> df = bg.datasets.load("cbpp")
    >>> model = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                 data=df, family="binomial")
    >>> model.design.fixed_names
    ('(Intercept)', 'period[2]', 'period[3]', 'period[4]')
    """

    def __init__(self, formula: str, data: pd.DataFrame, family="gaussian", link=None,
                 priors: dict | None = None, missing: str = "raise"):
        self.formula = formula
        self.missing = missing
        self.prior_overrides: dict = dict(priors or {})
        self.family: Family = get_family(family, link)
        self.design: Design = make_design(formula, data, self.family, missing=missing)
        self.priors: ResolvedPriors = resolve_priors(self.design, self.family, priors)

    def update(self, data: pd.DataFrame | None = None, priors: dict | None = None) -> "GLMM":
        """The same model (formula, family, link, ``missing``) on other data or under other priors,
        as R's ``update()``.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Default: this model's data.
        priors : dict, optional
            Overrides as in the constructor; default: this model's ``prior_overrides`` (data-scaled
            defaults are recomputed from ``data``).

        Returns
        -------
        GLMM
            Models that differ only in their response and priors build the same PyMC graph, so
            sampling one after the other reuses the compiled code (see
            :mod:`bayesglmm.bayes.prior_graph`).
        """
        return GLMM(self.formula, self.design.data if data is None else data, family=self.family.name,
                    link=self.family.link.name, priors=self.prior_overrides if priors is None else priors,
                    missing=self.missing)

    def __getstate__(self):  # the compiled PyMC model is rebuilt on demand, not pickled
        state = dict(self.__dict__)
        state.pop("_pymc_model", None)
        return state

    def __repr__(self):
        d = self.design
        groups = ", ".join(f"{b.label} ({b.n_levels} levels)" for b in d.random) or "none"
        return (f"GLMM({self.formula!r}, family={self.family.name}, link={self.family.link.name}, "
                f"nobs={d.nobs}, random: {groups})")

    def __str__(self):
        from .report import model_text

        return model_text(self)

    def _repr_html_(self):
        from .report import model_html

        return model_html(self)

    @cached_property
    def _pymc_model(self):
        from .bayes.model import build_pymc_model

        return build_pymc_model(self.design, self.family, self.priors)

    def pymc_model(self):
        """The :class:`pymc.Model` (built once, then cached); extend it inside ``with``.

        See :mod:`bayesglmm.bayes.model` for the names of its variables and coordinates.
        """
        return self._pymc_model

    def loglik(self, beta, b=(), sigma=None) -> float:
        """Conditional log-likelihood log p(y | β, b) in NumPy, every constant included.

        Parameters
        ----------
        beta : array, shape (p,)
        b : sequence of arrays, each (n_levels, n_terms), one per random block
        sigma : float, optional
            Residual SD (Gaussian).
        """
        d = self.design
        eta = d.offset + d.X @ np.asarray(beta, dtype=float)
        for block, bb in zip(d.random, b):
            eta = eta + np.sum(np.asarray(bb)[block.index] * block.Xr, axis=1)
        mu = self.family.link.inverse(eta)
        return float(np.sum(self.family.loglik_obs(d.y, mu, d.trials, sigma)))

    def simulate(self, params=None, n: int = 1, random_seed=None) -> list[pd.DataFrame]:
        """Data sets drawn from the model at ``params`` (a fit, a posterior, or a dict of
        ``beta``/``sd``/``corr``/``sigma``; default: the ML fit's estimates), keeping the design;
        see :func:`bayesglmm.simulate.simulate`.

        Returns
        -------
        list of pandas.DataFrame
            ``n`` copies of the model's data with the response column(s) redrawn.
        """
        from .simulate import simulate

        return simulate(self, params, n=n, random_seed=random_seed)

    def fit(self, method: str = "laplace", nagq: int | None = None, dispersion: str | None = None,
            blas_threads: int | None = 1, **options):
        """Fit the same model by maximum likelihood.

        Parameters
        ----------
        method : {"laplace", "agq", "pql", "gee", "ml", "reml"}
            ``"laplace"``: the Laplace approximation to the marginal likelihood, as lme4's
            ``glmer`` (penalized IRLS for the conditional modes, then L-BFGS-B over (θ, β));
            any random-effect structure. ``"agq"``: adaptive Gauss–Hermite quadrature for one
            grouping factor with one or more terms (product rule, nagq^k nodes a group); crossed
            or nested models get an error suggesting ``"laplace"``. ``"pql"``: penalized quasi-likelihood (Breslow & Clayton 1993), as
            MASS::glmmPQL; it has no likelihood, so ``loglik``/``aic``/``bic`` are NaN.
            ``"gee"``: the marginal model by statsmodels GEE (``correlation="exchangeable"``,
            ``"independence"`` or ``"ar1"``), robust SEs, population-averaged coefficients;
            returns a :class:`~bayesglmm.frequentist.gee.GEEFit`. ``"ml"``, ``"reml"``: Gaussian
            identity-link LMMs, as lme4's ``lmer`` (``REML = FALSE / TRUE``). For a Gaussian
            identity-link model ``"laplace"``, ``"agq"`` and ``"pql"`` are exact and give the
            ML fit (as ``glmer`` hands a gaussian family to ``lmer``).
            Profile-likelihood intervals for the SDs: ``fit.variance_components(profile=True)``.
            A 0/1 column of X that separates a binomial response raises a
            :class:`~bayesglmm.SeparationWarning` naming the term; non-convergence and
            singular fits a :class:`~bayesglmm.ConvergenceWarning`.
        nagq : int, optional
            Quadrature nodes per dimension for ``"agq"``, from 1 (the Laplace approximation) to
            201, taken as given (``glmer(..., nAGQ = 25)`` is ``nagq=25``). None (default): the
            nodes are chosen — a fit at 25 for a scalar random effect (11, 7, 5 for blocks of 2,
            3, more terms), then at more nodes per dimension
            (:data:`~bayesglmm.frequentist.agq.NAGQ_LADDER`: up to 201, 21, 11, 7 for 1–4 terms;
            5 or more terms keep 5, unchecked, ``fit.nagq_change`` None)
            until the log-likelihood at the estimates changes by less than 1e-6 from one rule
            to the next (:func:`~bayesglmm.frequentist.fit.fit_agq_settled`). ``fit.nagq`` is the
            rule used (the summary's "nAGQ = …"), ``fit.nagq_change`` that last change; when the
            largest rule does not settle, a ``quadrature`` flag and a ConvergenceWarning. Most
            data sets settle at the first rule, for one more evaluation; hard binary ones climb
            (ohio: 51 nodes, where 25 put the maximum 4.0e-4 too high).
        dispersion : {"fixed", "estimate"}, optional
            For ``"pql"``: σ = 1 (Breslow–Clayton, the default) or estimated (glmmPQL's default).
        blas_threads : int or None
            Threads for BLAS during the fit and its profile intervals (threadpoolctl); None leaves
            BLAS as it is. One by default: the engines' dense blocks are small, and one thread is
            as fast on a quiet machine and 3× faster when NUTS chains or other jobs share the
            cores (:func:`bayesglmm.frequentist.fit.blas_limit`).
        **options
            ``tol``, ``maxiter`` for the optimizer; ``correlation`` for GEE.

        Returns
        -------
        bayesglmm.frequentist.MLFit or bayesglmm.frequentist.gee.GEEFit
        """
        from .frequentist import fit

        return fit(self, method, nagq=nagq, dispersion=dispersion, blas_threads=blas_threads, **options)

    def deviance(self, method: str = "laplace", nagq: int | None = None):
        """The objective ``method`` minimises, −2 log L, as a function to evaluate and plot
        (lme4's ``devFunOnly = TRUE``).

        Parameters
        ----------
        method : {"laplace", "agq", "ml", "reml"}
            For ``"laplace"``/``"agq"`` the vector is (θ, β), θ the lower triangles of the
            relative Cholesky factors; for ``"ml"``/``"reml"`` θ alone, relative to the residual
            SD (β and σ profiled out). PQL has no single objective and is refused.
        nagq : int, optional
            Nodes per dimension for ``"agq"`` (None: the first rule :meth:`fit` tries, 25 for a
            scalar random effect; give ``nagq=fit.nagq`` for the rule a fit chose).

        Returns
        -------
        bayesglmm.frequentist.deviance.Deviance
            Callable; ``names``, ``start``, ``lower``, ``value_and_grad``, ``params(fit)`` and
            ``slice(name, values, at=fit)``. ``deviance(deviance.params(fit)) == -2 * fit.loglik``.

        Examples
        --------
        >>> dev = model.deviance("laplace")
        >>> fit = model.fit("laplace")
        >>> dev.slice("theta[herd.(Intercept)]", np.linspace(0, 2, 41), at=fit).plot(x="value")
        """
        from .frequentist.deviance import model_deviance

        return model_deviance(self, method, nagq)

    def sample(self, draws: int = 1000, tune: int = 1000, chains: int = 4, random_seed=None,
               cores: int | None = None, target_accept: float = 0.9, nuts_sampler: str = "nutpie",
               progressbar: bool = True, diagnose: bool = True, marginalize: bool | str = "auto",
               nagq: int | None = None, log_likelihood: bool = False, **kwargs):
        """Sample the posterior by NUTS.

        Parameters
        ----------
        draws, tune, chains : int
            Kept draws and tuning steps per chain, number of chains.
        random_seed : int, optional
            The same seed gives identical draws.
        cores : int, optional
            Parallel chains (default ``min(chains, 2)``); with ``marginalize=True`` also the threads
            that draw the random effects afterwards (a chain's draws each; the draws do not
            depend on it).
        target_accept : float
            NUTS target acceptance (0.9 by default: random-effect funnels need small steps).
        nuts_sampler : {"nutpie", "pymc"}
            nutpie's NUTS (the default: the fastest measured, docs/performance.md) or PyMC's.
            nutpie samples a graph of the package's own, whose canonical-link binomial or Poisson
            log-likelihood is one fused Op (:mod:`bayesglmm.bayes.loglik_op`: the same density, a
            third of the time per gradient on ohio); its compiled code is kept on disk by
            structure (:mod:`bayesglmm.bayes.nutpie_compile`: a model compiled before on this
            machine compiles nothing in a new process) and its compiled model in the process
            (:data:`bayesglmm.bayes.compilation.compiled_models`: a later model that differs only
            in its data or its priors' hyperparameters samples without building one). PyMC's NUTS
            samples :meth:`pymc_model` as it is (which may be extended; its leapfrog steps run in
            Python: several times slower).
        progressbar : bool
        diagnose : bool
            Run :meth:`Posterior.diagnostics` and warn if divergences, R-hat or ESS are bad.
        marginalize : bool or "auto"
            Sample (β, SD) by NUTS on the marginal likelihood, each group's random effect
            integrated out by adaptive Gauss–Hermite quadrature inside the graph, then draw the
            random effects from their conditional posteriors: the same variables and tables, a
            posterior exact up to the quadrature error (:mod:`bayesglmm.bayes.marginalized`).
            One grouping factor with a random block of up to 3 terms (``(1 | g)``, ``(1 + x | g)``,
            ``(1 + x || g)``: the product rule); Bernoulli/binomial (logit, probit, cloglog),
            log Poisson, and the dispersion families: negative binomial (log), beta-binomial
            (logit, probit, cloglog), Gamma (log) — θ or the shape sampled as in the full model
            (``dispersion_scale``, the same prior), the quadrature's gradient in it compiled. A
            Gaussian identity-link
            model (a linear mixed model, any number of terms) is integrated exactly, no
            quadrature: NUTS samples (β, SDs, correlation, σ). The few parameters left
            are correlated, so the mass matrix is dense: ``init="jitter+adapt_full"`` with PyMC's
            NUTS, ``adaptation="low_rank"`` with nutpie for one term (either overridden by passing
            it). ``"auto"`` (the default): True where the marginal model is exact and faster
            (docs/performance.md) — a linear mixed model of one grouping factor (integrated
            exactly: 10-50x the full model's ESS per second), or one scalar random term of a
            logit binomial or log Poisson response whose quadrature settles to 1e-4 (else the
            full model, with no warning) — and where ``nagq`` is given; False otherwise: several
            grouping factors, correlated blocks, the dispersion families, other links. The
            posterior says which (``post.idata["posterior"].attrs["marginalized"]``, the
            summary's header).
        nagq : int, optional
            Quadrature nodes with ``marginalize=True``; by default the fewest whose marginal
            log-likelihood settles to 1e-4 at the Laplace estimate and 3 SEs above it
            (:func:`bayesglmm.bayes.marginalized.choose_nagq`: cbpp 11, ohio 51). When none of the
            candidates settles (ohio ``(1 + age | id)``: 21² nodes still 0.6 from 15² at 1.5× the
            SDs), the largest is used with a
            :class:`~bayesglmm.bayes.marginalized.QuadratureWarning` and a ``quadrature`` flag on the
            posterior: the full model is then the safer choice. Not for a Gaussian model (exact).
        log_likelihood : bool
            Store each observation's log-likelihood at every draw in ``post.idata["log_likelihood"]``,
            under the response's name, so that ``az.loo(post.idata)``, ``az.waic`` and ``az.compare``
            work as on a bambi model sampled with ``idata_kwargs={"log_likelihood": True}``
            (:meth:`Posterior.log_likelihood` computes it, or a group's marginal one, on demand).
        **kwargs
            Passed to :func:`pymc.sample` and PyMC's NUTS (with ``nuts_sampler="nutpie"``: to
            :func:`nutpie.sample`, where ``save_warmup`` is False unless given, as PyMC discards the
            tuning draws). A name neither takes is refused with the accepted ones listed.

        Returns
        -------
        Posterior
        """
        from .bayes.posterior import sample_model

        check_sampler_kwargs(kwargs, nuts_sampler)
        if not isinstance(log_likelihood, bool):
            raise ValueError(f"log_likelihood must be True or False, got {log_likelihood!r}")
        post = sample_model(self, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                            cores=cores, target_accept=target_accept, nuts_sampler=nuts_sampler,
                            progressbar=progressbar, marginalize=marginalize, nagq=nagq, **kwargs)
        # what a refit without some rows (leave-one-group-out) repeats
        attrs = post.idata["posterior"].attrs
        attrs.update(bayesglmm_draws=int(draws), bayesglmm_tune=int(tune), bayesglmm_chains=int(chains),
                     bayesglmm_nuts_sampler=str(nuts_sampler), bayesglmm_target_accept=float(target_accept),
                     bayesglmm_marginalize=int("marginalized" in attrs))
        if log_likelihood:
            post.add_log_likelihood()
        if diagnose:
            post.diagnostics(warn=True)
        return post
