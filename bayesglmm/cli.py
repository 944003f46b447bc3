"""The ``bayesglmm`` command.

``bayesglmm compare`` (the main job) fits one model by every method — NUTS, Laplace,
adaptive quadrature, PQL, GEE — prints the side-by-side table and writes
``comparison.csv`` (wide), ``comparison_long.csv``, ``comparison.md`` and ``forest.png``
into ``--out``::

    bayesglmm compare                                  # salamander crossed model
    bayesglmm compare --dataset cbpp --draws 500 --out results/
    bayesglmm compare --data my.csv --formula "y ~ x + (1 | g)" --family bernoulli \
                      --methods nuts,laplace,gee

``bayesglmm sample`` samples a GLMM by NUTS and prints its tidy tables::

    bayesglmm sample --dataset cbpp --draws 500

Errors in the input (missing file, bad formula, unknown family) end with a
one-line message and exit status 2, without a traceback; option values (``--draws``,
``--chains``, ``--tune``, ``--seed``, ``--nagq``, ``--methods``, the data, formula and family) are
checked before anything is fitted or printed. ``compare`` exits 1 when every requested method failed or was skipped. The seed
is printed (drawn at random when ``--seed`` is not given), so any run can be repeated.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from .compare import DEFAULT_METHODS

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from . import datasets

    p = argparse.ArgumentParser(prog="bayesglmm", description="Generalized linear mixed models, Bayesian first.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="fit one model by every method and write the side-by-side table and plot")
    s = sub.add_parser("sample", help="sample a GLMM by NUTS and print its tables")
    for q in (c, s):
        src = q.add_mutually_exclusive_group()
        src.add_argument("--dataset", choices=datasets.list_datasets(), default=None,
                         help="a bundled data set (default: salamander); its reference model is the default formula")
        src.add_argument("--data", metavar="FILE.csv", help="a CSV file")
        q.add_argument("--formula", help="lme4-style formula, e.g. 'y ~ x + (1 | g)'")
        q.add_argument("--family", help="gaussian, bernoulli, binomial or poisson")
        q.add_argument("--link", default=None, help="link (default: the family's canonical link)")
        q.add_argument("--draws", type=int, default=1000, help="NUTS draws per chain (default 1000)")
        q.add_argument("--tune", type=int, default=1000, help="NUTS tuning steps per chain (default 1000)")
        q.add_argument("--chains", type=int, default=4)
        q.add_argument("--seed", type=int, default=None,
                       help="random seed (default: drawn at random and printed, so a run can be repeated)")
        q.add_argument("--missing", choices=("raise", "drop"), default="raise",
                       help="rows with missing values in a used column: an error (default) or dropped with a warning")
        q.add_argument("--no-progress", action="store_true", help="hide the sampling progress bar")
    c.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated methods (default {','.join(DEFAULT_METHODS)}; also ml, reml)")
    c.add_argument("--nagq", type=int, default=None,
                   help="quadrature nodes per dimension for agq (default: chosen, from 25 for one random "
                        "effect, 11 for two, until the log-likelihood settles)")
    c.add_argument("--no-profile", action="store_true", help="skip the profile-likelihood intervals of the SDs")
    c.add_argument("--out", default="bayesglmm-compare", metavar="DIR",
                   help="directory for comparison.csv, comparison_long.csv, comparison.md, forest.png "
                        "(default ./bayesglmm-compare)")
    return p


def _check_args(args) -> None:
    """Reject invalid option values before anything is fitted (one line, exit 2)."""
    import numpy as np

    for name in ("draws", "chains"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.tune < 0:
        raise ValueError(f"--tune must be 0 or more, got {args.tune}")
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.seed is None:
        args.seed = int(np.random.SeedSequence().entropy % 2**31)
    if getattr(args, "nagq", None) is not None:
        from .frequentist.fit import MAX_NAGQ

        if not 1 <= args.nagq <= MAX_NAGQ:
            raise ValueError(f"--nagq must be an integer from 1 to {MAX_NAGQ}, got {args.nagq}")
    if getattr(args, "methods", None) is not None:
        from .compare import ALL_METHODS

        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in methods if m not in ALL_METHODS]
        if unknown or not methods:
            raise ValueError(f"--methods: unknown method(s) {', '.join(unknown) or repr(args.methods)}; "
                             f"available: {', '.join(ALL_METHODS)}")


def _model(args):
    """The GLMM named by --dataset or --data/--formula/--family."""
    from . import datasets
    from .glmm import GLMM

    if args.data:
        try:
            data = pd.read_csv(args.data)
        except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
            raise ValueError(f"cannot read --data {args.data!r}: {err}") from None
        if not args.formula or not args.family:
            raise ValueError("--data needs --formula and --family")
        formula, family = args.formula, args.family
    else:
        meta = datasets.info(args.dataset or "salamander")
        data = datasets.load(meta.name)
        formula, family = args.formula or meta.formula, args.family or meta.family
    return GLMM(formula, data, family=family, link=args.link, missing=args.missing)


def _announce(model, seed) -> None:
    """The model and the seed, printed once every option has been checked (nothing before an error)."""
    print(model, flush=True)
    print(f"seed: {seed}", flush=True)


def _compare(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .compare import compare

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    _check_args(args)
    model = _model(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise ValueError(f"--out {str(out)!r} is not writable")
    _announce(model, args.seed)
    cmp = compare(model, methods, draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed,
                  progressbar=not args.no_progress, nagq=args.nagq, profile=not args.no_profile,
                  report=lambda message: print(message, flush=True))
    if not cmp.results:
        reasons = "; ".join(f"{m}: {why}" for m, why in {**cmp.skipped, **cmp.failed}.items())
        print(f"bayesglmm: error: every requested method failed or could not apply ({reasons})", file=sys.stderr)
        return 1
    wide = cmp.wide()
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
        print("\nEstimate (SE or posterior SD) [profile interval of an ML SD] by method; notes below")
        print(cmp.formatted(3).to_string())
    print()
    for line in cmp.notes():
        print(f"  {line}")
    wide.to_csv(out / "comparison.csv")
    cmp.table().to_csv(out / "comparison_long.csv", index=False)
    (out / "comparison.md").write_text(f"# {model.formula}\n\n" + cmp.to_markdown())
    cmp.plot().savefig(out / "forest.png", dpi=120)
    print(f"\nwrote {out / 'comparison.csv'}, {out / 'comparison_long.csv'}, {out / 'comparison.md'}, "
          f"{out / 'forest.png'}")
    return 0


def _sample(args) -> int:
    _check_args(args)
    model = _model(args)
    _announce(model, args.seed)
    post = model.sample(draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed,
                        progressbar=not args.no_progress)
    with pd.option_context("display.width", 140, "display.max_columns", 20, "display.precision", 4):
        print("\nFixed effects (posterior mean, SD, 95% interval)")
        print(post.fixed_effects().to_string(index=False))
        print("\nVariance components")
        print(post.variance_components().to_string(index=False))
    d = post.diagnostics(warn=False)
    print(f"\nDiagnostics: {d['divergences']} divergences, max R-hat {d['max_r_hat']:.3f}, "
          f"min bulk ESS {d['min_ess_bulk']:.0f}" + ("" if d["ok"] else "  (CHECK: see warnings above)"))
    return 0


def main(argv=None) -> int:
    """Entry point of the ``bayesglmm`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "compare":
            return _compare(args)
        if args.command == "sample":
            return _sample(args)
    except (ValueError, KeyError, TypeError, OSError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"bayesglmm: error: {msg}", file=sys.stderr)
        return 2
    return 1  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
