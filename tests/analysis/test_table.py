"""Each source type into the canonical table; --map; bad rows listed and left out."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import optuna
import pandas as pd
import pytest

from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.table import load_table



def test_records_folder_is_searched_recursively_and_skips_tool_folders(sweep_records, sweep_table):
    t = load_table(sweep_records, quiet=True)
    assert len(t) == len(sweep_table)  # decoys under .hydra/wandb/checkpoints are ignored
    assert {"N", "D", "C", "loss", "lr", "batch_size", "batch_tokens", "initial_loss",
            "weight_decay", "schedule", "status", "run_id"} <= set(t.columns)
    assert (t["batch_tokens"] == t["batch_size"] * 1024).all()
    # the recorded C (with an attention term) is kept, not recomputed
    assert np.allclose(t["C"], 6.2 * t["N"].astype(int) * t["D"].astype(int), rtol=1e-6)


def test_statuses_and_bad_rows_are_listed(tmp_path, capsys, synth):
    recs = [synth.make_record(f"ok{i}", 1e8 * (i + 1), 1e9, 3.0 - 0.1 * i) for i in range(4)]
    recs.append(synth.make_record("div", 1e8, 1e9, None, status="diverged"))
    recs.append(synth.make_record("nan", 2e8, 1e9, float("nan")))
    recs.append(synth.make_record("neg", -5, 1e9, 2.0))
    synth.write_records(tmp_path, recs)
    t = load_table(tmp_path)
    err = capsys.readouterr().err
    assert "2 bad row(s) left out" in err and "(nan)" in err and "(neg)" in err
    assert "loss=nan" in err and "N=-5" in err
    assert sorted(t["run_id"]) == ["ok0", "ok1", "ok2", "ok3"]
    both = load_table(tmp_path, statuses=("completed", "diverged"), quiet=True)
    assert "div" in set(both["run_id"])  # a diverged run keeps its missing loss for sensitivity


def test_csv_with_map_and_c_only_derives_d(tmp_path, capsys):
    df = pd.DataFrame({"Model Size": [1e8, 2e8, 4e8], "Training FLOP": [6e18, 2.4e19, 9.6e19],
                       "loss": [3.0, 2.8, 2.6]})
    df.to_csv(tmp_path / "pub.csv", index=False)
    t = load_table(tmp_path / "pub.csv", ["N=Model Size", "C=Training FLOP", "loss=loss"])
    assert np.allclose(t["D"], t["C"] / (6 * t["N"]))
    assert "D derived as C/(6N)" in capsys.readouterr().err
    assert "D derived as C/(6N)" in t.attrs["notes"][0]


def test_parquet_source(tmp_path, sweep_table):
    sweep_table.to_parquet(tmp_path / "runs.parquet")
    t = load_table(tmp_path / "runs.parquet", quiet=True)
    assert len(t) == len(sweep_table) and "batch_tokens" in t


def test_missing_map_column_names_the_column(tmp_path):
    pd.DataFrame({"a": [1.0]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(AnalysisError, match="column 'Model Size' named in --map N=Model Size "
                                           "does not exist; columns are: a"):
        load_table(tmp_path / "x.csv", ["N=Model Size"])


def test_empty_table_and_missing_source(tmp_path):
    (tmp_path / "e.csv").write_text("N,D,loss\n")
    with pytest.raises(AnalysisError, match="empty"):
        load_table(tmp_path / "e.csv")
    with pytest.raises(AnalysisError, match="does not exist"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(AnalysisError, match="no run.json"):
        load_table(tmp_path)


def test_all_rows_bad_is_an_error(tmp_path):
    pd.DataFrame({"N": [0, -1.0], "D": [1e9, 1e9], "loss": [2.0, 3.0]}).to_csv(tmp_path / "b.csv")
    with pytest.raises(AnalysisError, match="empty after dropping bad rows"):
        load_table(tmp_path / "b.csv", quiet=True)


def test_optuna_storage_prefers_records_and_falls_back_to_attrs(tmp_path, synth):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="ladder", storage=url)
    rec_path = synth.write_records(tmp_path / "runs", [synth.make_record("from-record", 1e8, 2e9, 2.5,
                                                             lr=3e-3)])[0]
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    t1 = optuna.trial.create_trial(params={"lr": 3e-3}, distributions=dist, value=2.5,
                                   user_attrs={"record": str(rec_path)})
    t2 = optuna.trial.create_trial(params={"lr": 1e-3}, distributions=dist, value=2.7,
                                   user_attrs={"record": str(tmp_path / "gone/run.json"),
                                               "N": 2e8, "D": 2e9, "C": 2.4e18})
    t3 = optuna.trial.create_trial(params={"lr": 1e-2}, distributions=dist,
                                   state=optuna.trial.TrialState.PRUNED,
                                   user_attrs={"N": 2e8, "D": 2e9})
    study.add_trials([t1, t2, t3])
    t = load_table(url, quiet=True)
    assert sorted(t["run_id"]) == ["from-record", "ladder/1"]
    row = t[t["run_id"] == "ladder/1"].iloc[0]
    assert row["N"] == 2e8 and row["loss"] == 2.7 and row["lr"] == 1e-3 and row["C"] == 2.4e18
    allt = load_table(url, statuses=None, quiet=True)
    assert "pruned" in set(allt["status"])


class _Run(SimpleNamespace):
    pass


class _Api:
    """Stand-in shaped like wandb.Api().runs(path): config, summary, name, group, tags, state."""

    def __init__(self, runs):
        self._runs = runs
        self.paths = []

    def runs(self, path):
        self.paths.append(path)
        return self._runs


def test_wandb_source_through_injected_api():
    runs = [_Run(id=f"id{i}", name=f"run{i}", group="study-1", tags=["N=1e8"], state=state,
                 config={"scale": {"N": 1e8 * (i + 1), "D": 2e9, "C": 1.2e18 * (i + 1)},
                         "hparams": {"lr": 1e-3 * (i + 1), "batch_size": 32},
                         "model": {"context": 128}},
                 summary={"final_val_loss": 3.0 - 0.1 * i, "_step": 10})
            for i, state in enumerate(["finished", "finished", "crashed"])]
    api = _Api(runs)
    t = load_table("wandb:me/proj", api_factory=lambda: api, quiet=True,
                   mapping=["N=scale.N", "D=scale.D", "C=scale.C", "lr=hparams.lr",
                            "batch_size=hparams.batch_size", "loss=final_val_loss"])
    assert api.paths == ["me/proj"]
    assert len(t) == 2 and sorted(t["loss"]) == [2.9, 3.0]
    assert set(t["study"]) == {"study-1"}
    # a run logged with the record's layout needs no --map at all
    plain = load_table("wandb:me/proj", api_factory=lambda: api, quiet=True)
    assert sorted(plain["loss"]) == [2.9, 3.0] and sorted(plain["N"]) == [1e8, 2e8]
    assert (plain["batch_tokens"] == 32 * 128).all()


def test_ten_thousand_records_load(tmp_path, synth):
    """Smoke-size version of the 10,000-record benchmark (benchmarks/analysis_speed.py)."""
    recs = [synth.make_record(f"r{i}", 1e8, 1e9, 3.0) for i in range(200)]
    synth.write_records(tmp_path, recs)
    assert len(load_table(tmp_path, quiet=True)) == 200
    assert json.loads((tmp_path / "multirun/0/0/run.json").read_text())["run_id"] == "r0"
