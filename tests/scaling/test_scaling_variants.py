"""Scaling studies of other kinds, each a whole tiny study: a µP ladder that searches only its
smallest width, and a branched ladder that takes its smaller budgets from cooldown branches (apart
from `test_scaling_study.py`, so that the two files run on two test workers at once)."""
from __future__ import annotations

import json

import optuna
import pytest

from scalelab.analysis import ladder
from scalelab.analysis.laws import load_fit
from scalelab.analysis.table import load_table
from scalelab.record import find, read

from tests.scaling.test_scaling_study import study_args


@pytest.mark.slow
def test_a_mup_study_searches_the_learning_rate_at_each_budgets_smallest_width_only(tmp_path, run_cli):
    out = run_cli(*study_args("model.parametrization=mup", "model.base_width=8", "hydra.sweeper.scaling.transfer=true",
                              "hydra.sweeper.scaling.seeds=0", "hydra.sweeper.scaling.verify=false",
                              trials=3), cwd=tmp_path)  # three: the lr law needs them at the searched scales
    assert out.returncode == 0, out.stderr[-3000:]
    storage = f"sqlite:///{tmp_path}/runs/sweeps/studies.db"
    studies = {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
               for s in optuna.get_all_study_summaries(storage)}
    for tokens in ("1e4", "2e4", "4e4"):
        searched = studies[f"ladder/model.width=8,train.tokens={tokens}"]
        assert len(searched.trials) == 3
        for width in (12, 16):
            study = studies[f"ladder/model.width={width},train.tokens={tokens}"]
            assert [t.params["optim.lr"] for t in study.trials] == [searched.best_params["optim.lr"]]
            assert study.user_attrs["search_range"]["optim.lr"]["reason"].startswith("transferred (µP)")
    records = [read(p) for p in find(tmp_path / "runs/sweeps/ladder")]
    assert len(records) == 3 * 3 + 6 * 1  # 27 without transfer
    assert {r["config"]["model"]["parametrization"] for r in records} == {"mup"}
    assert sorted(r["config"]["model"]["width"] for r in records if r["config"]["trial"]["role"] == "transfer") \
        == [12] * 3 + [16] * 3
    # every scale's loss enters L(N, D); only the searched scales' optima enter the lr law
    table = load_table(tmp_path / "runs/sweeps/ladder", quiet=True)
    assert len(ladder.cells(table)) == 9
    assert load_fit(tmp_path / "runs/sweeps/ladder/fits/hparams.json").n_points_ == 3


@pytest.mark.slow
def test_a_branched_study_trains_each_size_once_and_takes_its_smaller_budgets_from_cooldown_branches(tmp_path,
                                                                                                   run_cli):
    out = run_cli(*study_args("schedule.warmup=2", "hydra.sweeper.scaling.verify=false", branched=True), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    storage = f"sqlite:///{tmp_path}/runs/sweeps/studies.db"
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(storage)) == [
        f"ladder/model.width={w},train.tokens=4e4" for w in (12, 16, 8)]  # the largest budget of each size
    folder = tmp_path / "runs/sweeps/ladder"
    records = [read(p) for p in find(folder)]
    trunks = [r for r in records if r["branch"] is None]
    assert len(trunks) == 3 * (2 + 1)  # each size: 2 trials and 1 seed run
    for trunk in trunks:
        branches = [r for r in records if r["branch"] and r["branch"]["parent"] == trunk["run_id"]]
        assert sorted(r["scale"]["D"] for r in branches) == [39 * 256, 78 * 256]  # 1e4 and 2e4 in whole steps
        assert {r["hparams"]["lr"] for r in branches} == {trunk["hparams"]["lr"]}
        assert {r["config"]["trial"]["role"] for r in branches} == {trunk["config"]["trial"]["role"]}
        assert trunk["family"]["compute"] < 0.75 * (trunk["scale"]["C"] + sum(r["scale"]["C"] for r in branches))
    # every scale of the ladder is a cell of the analysis, and the laws are fitted on all nine
    verdict = json.loads((folder / "verdict.json").read_text())
    assert [s["trials"] for s in verdict["scales"]] == [2] * 9
    assert len(ladder.cells(load_table(folder, quiet=True))) == 9 and (folder / "fits/loss.json").exists()
