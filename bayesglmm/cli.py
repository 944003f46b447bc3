"""The ``bayesglmm`` command.

``bayesglmm sample`` samples a GLMM by NUTS and prints its tidy tables::

    bayesglmm sample                                   # salamander crossed model
    bayesglmm sample --dataset cbpp --draws 500
    bayesglmm sample --data my.csv --formula "y ~ x + (1 | g)" --family bernoulli

Errors in the input (missing file, bad formula, unknown family) end with a
one-line message and exit status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from . import datasets

    p = argparse.ArgumentParser(prog="bayesglmm", description="Generalized linear mixed models, Bayesian first.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample", help="sample a GLMM by NUTS and print its tables")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--dataset", choices=datasets.list_datasets(), default=None,
                     help="a bundled data set (default: salamander); its reference model is the default formula")
    src.add_argument("--data", metavar="FILE.csv", help="a CSV file")
    s.add_argument("--formula", help="lme4-style formula, e.g. 'y ~ x + (1 | g)'")
    s.add_argument("--family", help="gaussian, bernoulli, binomial or poisson")
    s.add_argument("--link", default=None, help="link (default: the family's canonical link)")
    s.add_argument("--draws", type=int, default=1000)
    s.add_argument("--tune", type=int, default=1000)
    s.add_argument("--chains", type=int, default=4)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--no-progress", action="store_true", help="hide the sampling progress bar")
    return p


def _sample(args) -> int:
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
    model = GLMM(formula, data, family=family, link=args.link)
    print(model, flush=True)
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
        if args.command == "sample":
            return _sample(args)
    except (ValueError, KeyError, TypeError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"bayesglmm: error: {msg}", file=sys.stderr)
        return 2
    return 1  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
