import subprocess
import sys

import pytest

from bayesglmm.cli import main

# few draws: the CLI prints its diagnostics warning, which is not what these tests check
quick = pytest.mark.filterwarnings("ignore::bayesglmm.bayes.posterior.SamplingWarning")


@quick
def test_sample_bundled_dataset(capsys):
    rc = main(["sample", "--dataset", "cbpp", "--draws", "200", "--tune", "300", "--chains", "2",
               "--seed", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "period[4]" in out and "herd" in out and "Diagnostics:" in out


@quick
def test_sample_csv_file(tmp_path, capsys):
    import bayesglmm as bg
    path = tmp_path / "sleep.csv"
    bg.datasets.load("sleepstudy").to_csv(path, index=False)
    rc = main(["sample", "--data", str(path), "--formula", "Reaction ~ Days + (1 | Subject)",
               "--family", "gaussian", "--draws", "200", "--tune", "300", "--chains", "2", "--seed", "2",
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "Residual" in out and "Days" in out


@pytest.mark.parametrize("args,msg", [
    (["--data", "/no/such.csv", "--formula", "y ~ x", "--family", "gaussian"], "cannot read --data"),
    (["--dataset", "cbpp", "--formula", "incidence ~ + (1 | herd)"], "empty term"),
    (["--dataset", "cbpp", "--family", "gamma"], "unknown family 'gamma'"),
    (["--dataset", "cbpp", "--formula", "incidence ~ nope + (1 | herd)", "--family", "poisson"], "'nope' is not in the data"),
])
def test_bad_input_one_line_no_traceback(args, msg):
    proc = subprocess.run([sys.executable, "-m", "bayesglmm.cli", "sample", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert msg in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
