"""Execute the case-study notebooks (``case_studies/*.py``, jupytext percent format).

    python scripts/run_notebooks.py            # fast mode (BAYESGLMM_FAST=1): what CI runs
    python scripts/run_notebooks.py --full     # full mode: rewrites the committed .ipynb files
    python scripts/run_notebooks.py 03         # only the notebooks whose name contains "03"

The ``.py`` file is the source (reviewable diffs); the paired ``.ipynb`` beside it holds the
outputs a reader sees, and is written only in full mode. Fast mode executes into a temporary
directory, so the committed outputs stay those of the full run. A failing cell, or a notebook
over its time budget, makes the script exit with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "case_studies"

# Time budget per notebook in fast mode, in seconds on 2 cores (an empty compile cache
# included). Measured times are printed on every run; the budgets leave about 2x headroom.
FAST_BUDGET = 240
FULL_TIMEOUT = 3600  # per cell, full mode


def run(path: Path, full: bool, out_dir: Path) -> tuple[float, str | None]:
    nb = jupytext.read(path)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                          "language": "python"})
    env_fast = os.environ.get("BAYESGLMM_FAST")
    os.environ["BAYESGLMM_FAST"] = "0" if full else "1"
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = NotebookClient(nb, timeout=FULL_TIMEOUT if full else FAST_BUDGET, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except Exception as exc:  # a failing cell: report it, keep going with the others
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if env_fast is None:
            os.environ.pop("BAYESGLMM_FAST", None)
        else:
            os.environ["BAYESGLMM_FAST"] = env_fast
    seconds = time.perf_counter() - start
    target = (path.with_suffix(".ipynb") if full and error is None else out_dir / (path.stem + ".ipynb"))
    nbformat.write(nb, target)
    return seconds, error


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("select", nargs="*", help="run only notebooks whose file name contains one of these")
    parser.add_argument("--full", action="store_true", help="full mode; writes case_studies/*.ipynb")
    args = parser.parse_args(argv)
    paths = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.py")
                   if not args.select or any(s in p.name for s in args.select))
    if not paths:
        print("no notebooks selected", file=sys.stderr)
        return 1
    out_dir = Path(tempfile.mkdtemp(prefix="bayesglmm-notebooks-"))
    failed = []
    for path in paths:
        seconds, error = run(path, args.full, out_dir)
        over = not args.full and seconds > FAST_BUDGET
        status = "FAILED" if error else ("OVER BUDGET" if over else "ok")
        print(f"{path.name:32s} {seconds:7.1f} s  {status}" + ("" if args.full else f"  (budget {FAST_BUDGET} s)"),
              flush=True)
        if error:
            print("   " + error.strip().splitlines()[-1][:2000], flush=True)
        if error or over:
            failed.append(path.name)
    print(f"executed notebooks in {'full' if args.full else 'fast'} mode; outputs in "
          f"{'case_studies/' if args.full else out_dir}")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
