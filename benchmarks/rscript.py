"""The benchmarks' R side: a script written into a temporary folder, run by ``Rscript``, and the
JSON object its last line prints read back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from typing import Callable


def data_frame(tmp: str, name: str, data, categorical=()) -> str:
    """Write ``data`` as ``tmp/name.csv``; return the R line reading it into ``d`` with the
    ``categorical`` columns as factors."""
    csv = os.path.join(tmp, f"{name}.csv")
    data.to_csv(csv, index=False)
    cats = ", ".join(f'"{c}"' for c in categorical)
    return f"d <- read.csv('{csv}'); for (c in c({cats})) d[[c]] <- factor(as.character(d[[c]]))"


def run_json(make_lines: Callable[[str], list[str]], label: str, timeout: float = 1800):
    """Run the R script ``make_lines(tmp)`` returns (it may write its data into ``tmp``) and return
    the JSON object printed on its last line; None, saying why, without Rscript or when R fails."""
    if shutil.which("Rscript") is None:
        print(f"  ({label}: no Rscript here)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "script.R")
        lines = make_lines(tmp)
        with open(script, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        proc = subprocess.run(["Rscript", script], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        print(f"  ({label} failed: {proc.stderr.strip().splitlines()[-3:]})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])
