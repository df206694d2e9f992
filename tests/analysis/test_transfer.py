"""lr* per width from runs over a learning-rate grid, and its spread across widths."""
import numpy as np
import pandas as pd
import pytest

from scalelab.analysis.transfer import lr_optima, spread


def grid(optimum_by_width: dict[int, float], parametrization: str, seeds=(0.0,)) -> pd.DataFrame:
    """Loss a parabola in log2 lr around each width's optimum (plus a per-seed offset)."""
    rows = []
    for width, optimum in optimum_by_width.items():
        for k in range(-4, 5):
            lr = 1e-2 * 2 ** (k / 2)
            for offset in seeds:
                rows.append({"parametrization": parametrization, "width": width, "lr": lr, "D": 1e6,
                             "loss": 3.0 + (np.log2(lr) - np.log2(optimum)) ** 2 + offset})
    return pd.DataFrame(rows)


def test_lr_optima_recover_each_widths_optimum_and_the_spread_across_widths():
    sp = {16: 2e-2, 32: 1e-2, 64: 5e-3}  # halving with each doubling of width
    mup = {16: 1.2e-2, 32: 1.2e-2, 64: 1.2e-2}
    optima = lr_optima(pd.concat([grid(sp, "sp"), grid(mup, "mup")]))
    found = {(r.parametrization, r.width): r.lr_opt for r in optima.itertuples()}
    for parametrization, truth in (("sp", sp), ("mup", mup)):
        for width, lr in truth.items():
            assert found[(parametrization, width)] == pytest.approx(lr, rel=1e-9)
    assert spread(optima) == pytest.approx({"sp": 2.0, "mup": 0.0}, abs=1e-9)


def test_seeds_at_one_rate_count_by_their_mean():
    table = grid({16: 1e-2}, "mup", seeds=(0.0, 0.2))
    lucky = table.index[(table["lr"] == table["lr"].max())][0]
    table.loc[lucky, "loss"] = 0.0  # one lucky seed at the largest rate: the lower envelope would pick it
    row = lr_optima(table).iloc[0]
    assert row["edge"] is None and row["lr_opt"] < 2e-2 and row["runs"] == 18
