"""The sparsity preset (`sweeps=sparsity`) end to end on a tiny ladder: dense and MoE scales,
each trial with its cooldown branch, every record with its sparsity. (The law and the report
read such records in tests/analysis/test_sparsity_law.py: tiny runs this short learn too little
for the loss to fall with size.)"""
from __future__ import annotations

import pytest

from scalelab.analysis.table import load_table
from scalelab.record import find, read

TINY = ["model.context=32", "train.batch_size=8", "train.eval_every=1000", "train.eval_tokens=2048",
        "logger=none", "train.tokens=2e4", "schedule.branches=[1e4]", "schedule.warmup=10"]


@pytest.mark.slow
def test_the_sparsity_preset_trains_dense_and_moe_scales_with_their_branches(tmp_path, run_cli):
    out = run_cli("sweeps=sparsity", *TINY, "model.width=8,16", "model.moe.experts=0,4", "hydra.sweeper.n_trials=1",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "runs/sweeps/sparsity"
    records = [read(p) for p in find(folder)]
    assert len(records) == 4 * 2  # 4 scales, 1 lr of the preset's grid each, its run and its branch
    assert {r["study"] for r in records} == {f"sparsity/model.width={w},model.moe.experts={e}"
                                            for w in (8, 16) for e in (0, 4)}
    moe = [r for r in records if r["config"]["model"]["moe"]["experts"]]
    assert len(moe) == 4 and {r["scale"]["sparsity"] for r in moe} == {0.75}
    assert all(r["scale"]["N_total"] > r["scale"]["N_active"] == r["scale"]["N"] for r in moe)
    assert all("sparsity" not in r["scale"] for r in records if r not in moe)  # dense records as before
    assert sorted({r["scale"]["D"] for r in records}) == [39 * 256, 78 * 256]  # 1e4 and 2e4 in whole steps
    table = load_table(folder, quiet=True)
    assert sorted(table["sparsity"].fillna(0).unique()) == [0, 0.75] and set(table["lr"]) <= {0.0025, 0.005, 0.01}
