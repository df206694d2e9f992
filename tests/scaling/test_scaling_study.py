"""The scaling study (`sweeps=ladder`): bad input before any trial, and a whole tiny study run,
resumed and re-analysed."""
from __future__ import annotations

import json

import optuna
import pytest

from scalelab.analysis import ladder
from scalelab.analysis.laws import load_fit
from scalelab.analysis.table import load_table
from scalelab.record import find, read


TINY = ["model.context=32", "train.batch_size=8", "train.eval_every=1000", "train.eval_tokens=2048", "logger=none"]
LADDER = ["model.width=8,12,16", "train.tokens=1e4,2e4,4e4"]


@pytest.mark.parametrize("overrides, words", [
    # another key searched: with none, the sweep's own check says no key is searched
    (["optim.lr=0.01", "optim.weight_decay=interval(0.0, 0.2)"],
     "optim.lr must be searched as tag(log, interval(a, b)); it is not searched"),
    (["optim.lr=choice(0.01,0.02)"], "it is searched as CategoricalDistribution"),
    (["model.width=12,16,24", "train.tokens=2e5,8e5"], "the ladder has 3 model size(s) and 2 token budget(s)"),
    (["hydra.sweeper.scaling.target_C=1e9"], "scaling.target_C=1e+09 is not larger than the ladder's largest budget"),
    # every range is checked in test_settings.py; this one, that the sweep reports them
    (["hydra.sweeper.scaling.floor=1"], "scaling.floor=1.0 must be > 1"),
    (["hydra.sweeper.scaling.transfer=true"], "scaling.transfer=true carries each budget's best learning rate to "
                                              "wider models, which holds under µP only"),
    (["schedule=cosine"], "scaling.branches=true forks each model size's smaller budgets off "
                          "its largest run: schedule.branches needs schedule=wsd"),
    (["schedule.warmup=0.02"], "schedule.warmup as a step count"),
    # the old name of the node, read for one release
    (["hydra.sweeper.loop.floor=1"], "scaling.floor=1.0 must be > 1"),
    (["hydra.sweeper.loop.flor=3"], "Key 'flor' not in 'DeprecatedLoop'"),
    (["data=tokens", "data.dir=no_such_folder"], "data.dir=no_such_folder: no readable meta.json gives the vocabulary"),
])
def test_bad_study_input_is_one_line_before_any_trial(tmp_path, run_cli, overrides, words):
    out = run_cli("sweeps=ladder", *TINY, *overrides, cwd=tmp_path)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1 and lines[0].startswith("scalelab") and words in lines[0], out.stderr
    assert not list(tmp_path.glob("runs/**/run.json"))


def study_args(*overrides: str, branched: bool = False, trials: int = 2) -> list[str]:
    """`scalelab train` arguments of the preset on a tiny ladder of `trials` per scale; every scale
    a study of its own unless `branched` (the preset's)."""
    unbranched = [] if branched else ["hydra.sweeper.scaling.branches=false", "schedule=cosine", "schedule.warmup=0.02"]
    return ["-m", "sweeps=ladder", *TINY, *LADDER, f"hydra.sweeper.n_trials={trials}",
            *unbranched,
            "optim.lr=tag(log, interval(3e-3, 5e-2))",
            "hydra.sweeper.scaling.seeds=1", "hydra.sweeper.scaling.verify_seeds=1", "hydra.sweeper.scaling.target_C=6e9",
            "hydra.sweeper.scaling.target_N=2e4",
            "hydra.sweeper.scaling.bootstrap=20", "hydra.sweeper.heartbeat_interval=1", *overrides]


@pytest.mark.slow
def test_a_tiny_study_runs_guides_predicts_verifies_and_resumes_as_a_no_op(tmp_path, run_cli):
    proc = run_cli(*study_args(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    folder = tmp_path / "runs/sweeps/ladder"
    # priced before the first trial
    priced = log.index("scaling study ladder: 9 scales in ascending compute")
    assert priced < log.index("trial 0 COMPLETE") and "FLOPs, about" in log[priced:log.index("trial 0 COMPLETE")]
    storage = f"sqlite:///{tmp_path}/runs/sweeps/studies.db"
    summaries = sorted(optuna.get_all_study_summaries(storage), key=lambda s: s._study_id)
    studies = [optuna.load_study(study_name=s.study_name, storage=storage) for s in summaries]
    records = [read(p) for p in find(folder)]

    def scale_records(study):
        return [r for r in records if r["study"] == study.study_name]

    # ascending compute, each scale with its trials, its seed run and its recorded search range
    budgets = [scale_records(s)[0]["scale"]["C"] for s in studies]
    assert len(studies) == 9 and budgets == sorted(budgets)
    for k, study in enumerate(studies):
        ranges = study.user_attrs["search_range"]
        described = ladder.SearchRange(**ranges["optim.lr"]).describe()
        runs = scale_records(study)
        assert sorted(r["config"]["trial"]["role"] or "search" for r in runs) == ["search"] * 2 + ["seed"]
        assert {r["config"]["trial"]["search_range"] for r in runs} == {described}
        if k < 2:
            assert "configured range" in described
        elif ranges["optim.lr"]["centre"] is not None:  # the prediction is the first trial
            assert study.trials[0].params["optim.lr"] == pytest.approx(ranges["optim.lr"]["centre"])
    assert any("law-guided" in s.user_attrs["search_range"]["optim.lr"]["reason"] for s in studies[2:])

    verdict = json.loads((folder / "verdict.json").read_text())
    roles = sorted(r["config"]["trial"]["role"] for r in records if r["study"] == "ladder/target")
    assert roles == ["double", "half", "lr_high", "lr_low", "optimum"]
    v = verdict["verdict"]
    assert v["complete"] and v["measured_loss"] > 0 and len(v["lr_scan"]) == 3
    assert v["inside_interval"] == (v["interval"][0] <= v["measured_loss"] <= v["interval"][1])
    assert "verdict: predicted loss" in log

    # the same command again: nothing is trained, and the stored runs give the same fits
    again = run_cli(*study_args(), cwd=tmp_path)
    assert again.returncode == 0 and len(find(folder)) == len(records)
    assert "trial 0 COMPLETE" not in again.stdout + again.stderr
    table = load_table(folder, quiet=True)
    refit = ladder.loss_law(ladder.cells(table), bootstrap=20)
    assert refit.params_ == load_fit(folder / "fits/loss.json").params_
    assert json.loads((folder / "verdict.json").read_text())["target"] == verdict["target"]
