"""display_table: what a notebook and the HTML summaries show of a tidy table, the table itself unchanged."""

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.report import display_table


def _vc():
    return pd.DataFrame({"group": ["herd", "herd"], "term": ["(Intercept)", "period2"], "term2": [None, None],
                         "kind": ["sd", "sd"], "estimate": [1.300982, 0.0123456], "std_error": [np.nan, np.nan],
                         "p_value": [3.1e-7, 0.5], "r_hat": [1.004361, 0.99987], "ess_bulk": [1126.761041, 87.2],
                         "method": ["nuts", "nuts"]})


def test_display_drops_empty_columns_and_rounds():
    shown = display_table(_vc())
    assert list(shown.columns) == ["group", "term", "kind", "estimate", "p_value", "r_hat", "ess_bulk", "method"]
    assert shown["estimate"].tolist() == ["1.301", "0.01235"]          # 4 significant digits
    assert shown["r_hat"].tolist() == ["1.004", "1.000"]               # 3 decimals
    assert shown["ess_bulk"].tolist() == ["1127", "87"]                # whole numbers
    assert shown["p_value"].tolist() == ["3.1e-07", "0.5000"]
    assert display_table(pd.DataFrame({"x": [12345.67]}))["x"].tolist() == ["12346"]  # not 1.235e+04
    assert display_table(_vc(), digits=2)["estimate"].tolist() == ["1.3", "0.012"]
    both = pd.concat({"full": _vc()[["estimate", "ess_bulk"]]}, axis=1)  # the column name is the last level
    assert display_table(both)[("full", "ess_bulk")].tolist() == ["1127", "87"]


def test_display_leaves_the_table_unchanged():
    vc = _vc()
    before = vc.copy()
    display_table(vc)
    pd.testing.assert_frame_equal(vc, before)
    assert vc["term2"].isna().all() and vc["estimate"].dtype == float


def test_display_keeps_index_and_text_and_refuses_no_digits():
    frame = pd.DataFrame({"estimate": [0.5, np.nan], "flag": [True, False]}, index=["a", "b"])
    shown = display_table(frame)
    assert list(shown.index) == ["a", "b"] and shown["estimate"].tolist() == ["0.5000", ""]
    assert shown["flag"].tolist() == [True, False]
    assert bg.display_table is display_table
    with pytest.raises(ValueError, match="digits"):
        display_table(frame, digits=0)
