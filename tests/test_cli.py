import subprocess
import sys

import pytest

from bayesglmm.cli import main

# few draws: the CLI prints its diagnostics warning, which is not what these tests check
quick = pytest.mark.filterwarnings("ignore::bayesglmm.bayes.posterior.SamplingWarning")


@pytest.mark.slow
@quick
def test_sample_bundled_dataset(capsys):
    rc = main(["sample", "--dataset", "cbpp", "--draws", "200", "--tune", "300", "--chains", "2",
               "--seed", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "period[4]" in out and "herd" in out and "Diagnostics:" in out


@pytest.mark.slow
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


@pytest.mark.slow
def test_compare_bundled_dataset_writes_files(tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["compare", "--dataset", "cbpp", "--draws", "150", "--tune", "250", "--chains", "2", "--seed", "1",
               "--no-progress", "--no-profile", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    for name in ("comparison.csv", "comparison_long.csv", "comparison.md", "forest.png"):
        assert (out / name).stat().st_size > 0, name
    import pandas as pd
    wide = pd.read_csv(out / "comparison.csv", index_col=0)
    assert list(wide.columns) == ["nuts", "laplace", "agq", "pql", "gee", "agq (marginal)", "nuts (marginal)"]
    assert "sd((Intercept)|herd)" in wide.index and "period[4]" in text
    assert "[nuts] fitting ..." in text and "[gee] done in" in text  # progress, method by method
    long = pd.read_csv(out / "comparison_long.csv")
    assert {"nuts", "laplace", "agq", "pql", "gee"} <= set(long["method"])


@pytest.mark.slow
def test_compare_csv_file_with_skipped_method(tmp_path, capsys):
    import bayesglmm as bg
    path = tmp_path / "sal.csv"
    bg.datasets.load("salamander").to_csv(path, index=False)
    rc = main(["compare", "--data", str(path), "--formula", "Mate ~ WSf * WSm + (1 | Female) + (1 | Male)",
               "--family", "bernoulli", "--methods", "nuts,laplace,agq,gee", "--draws", "150", "--tune", "250",
               "--chains", "2", "--seed", "2", "--no-progress", "--no-profile", "--out", str(tmp_path / "o")])
    text = capsys.readouterr().out
    assert rc == 0
    assert "agq: skipped" in text and "gee: skipped" in text
    md = (tmp_path / "o" / "comparison.md").read_text()
    assert "sd((Intercept)\\|Female)" in md and "agq: skipped" in md  # the label's | escaped for Markdown


@pytest.mark.slow
@pytest.mark.parametrize("args,msg", [
    (["--data", "/no/such.csv", "--formula", "y ~ x", "--family", "gaussian"], "cannot read --data"),
    (["--dataset", "cbpp", "--formula", "incidence ~ + (1 | herd)"], "empty term"),
    (["--dataset", "cbpp", "--family", "tweedie"], "unknown family 'tweedie'"),
    (["--dataset", "cbpp", "--methods", "laplace,hglm"], "unknown method"),
])
def test_compare_bad_input_one_line_no_traceback(args, msg):
    proc = subprocess.run([sys.executable, "-m", "bayesglmm.cli", "compare", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert msg in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("args,msg", [
    (["--data", "/no/such.csv", "--formula", "y ~ x", "--family", "gaussian"], "cannot read --data"),
    (["--dataset", "cbpp", "--formula", "incidence ~ + (1 | herd)"], "empty term"),
    (["--dataset", "cbpp", "--family", "tweedie"], "unknown family 'tweedie'"),
    (["--dataset", "cbpp", "--formula", "incidence ~ nope + (1 | herd)", "--family", "poisson"], "'nope' is not in the data"),
])
def test_bad_input_one_line_no_traceback(args, msg):
    proc = subprocess.run([sys.executable, "-m", "bayesglmm.cli", "sample", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert msg in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_nothing_is_printed_before_an_invalid_option_is_refused(capsys):
    """The seed and the model are printed once every option, the data and the family have been checked."""
    from bayesglmm.cli import main

    assert main(["sample", "--dataset", "cbpp", "--family", "tweedie"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "unknown family 'tweedie'" in out.err
    assert main(["compare", "--data", "/no/such.csv", "--formula", "y ~ (1 | g)", "--family", "poisson"]) == 2
    assert capsys.readouterr().out == ""
