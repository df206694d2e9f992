"""Each source type into the canonical table; --map; bad rows listed and left out."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pandas as pd
import pytest
from sqlalchemy.engine import make_url

from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.table import (best_per_cell, flop_convention, has_sweep, load_table,
                                     sqlite_file)
from scalelab.record import FlopConvention


def test_records_folder_is_searched_recursively_and_skips_tool_folders(sweep_records, sweep_table,
                                                                       synth):
    t = load_table(sweep_records, quiet=True)
    assert len(t) == len(sweep_table)  # decoys under .hydra/wandb/checkpoints/csv are ignored
    assert {"N", "D", "C", "loss", "lr", "batch_size", "batch_tokens", "initial_loss",
            "weight_decay", "schedule", "status", "run_id"} <= set(t.columns)
    assert (t["batch_tokens"] == t["batch_size"] * 1024).all()
    # the recorded C (with an attention term) is kept, not recomputed
    assert np.allclose(t["C"], synth.record_C(t["N"], t["D"], 1024), rtol=1e-12)
    assert (t["C"] > 1.02 * 6 * t["N"] * t["D"]).all()  # 2% to 6% above 6ND here


def test_records_convention_reproduces_recorded_C(sweep_records, synth):
    t = load_table(sweep_records, quiet=True)
    flops = t.attrs["flops"]
    assert flops.name == "records" and flops.k > 0 and flops.p == pytest.approx(-0.5)
    assert np.max(np.abs(flops.C(t["N"], t["D"]) / t["C"] - 1)) < 1e-3
    assert flops.max_error < 1e-3
    # and back: D from N and the recorded C
    assert np.allclose(flops.D(t["N"], t["C"]), t["D"], rtol=1e-3)
    # a model size between the runs' follows the same attention share
    assert flops.C(3e8, 1e10) == pytest.approx(synth.record_C(3e8, 1e10, 1024), rel=1e-3)
    assert flop_convention(t) is flops


def test_unreadable_records_are_named_and_skipped(tmp_path, capsys, synth):
    paths = synth.write_records(tmp_path, [synth.make_record(f"r{i}", 1e8 * (i + 1), 1e9, 3.0)
                                           for i in range(4)])
    paths[1].write_text(paths[1].read_text()[:50])  # a run killed mid-write by an old writer
    old = json.loads(paths[2].read_text())
    old["schema_version"] = 99
    paths[2].write_text(json.dumps(old))
    t = load_table(tmp_path, quiet=True)
    err = capsys.readouterr().err
    assert sorted(t["run_id"]) == ["r0", "r3"]
    assert f"run record {paths[1]} is truncated or not JSON" in err
    assert f"run record {paths[2]} has schema version 99" in err
    for p in paths[:2] + paths[3:]:
        p.unlink()
    with pytest.raises(AnalysisError, match="none of the 1 run.json .* could be read"):
        load_table(tmp_path, quiet=True)
    with pytest.raises(AnalysisError, match="has schema version 99"):
        load_table(paths[2], quiet=True)


def test_foreign_table_keeps_its_own_convention(tmp_path):
    N = np.array([1e8, 2e8, 4e8, 8e8])
    D = 20 * N
    pd.DataFrame({"N": N, "D": D, "C": 6.6 * N * D, "loss": [3.0, 2.9, 2.8, 2.7]}) \
        .to_csv(tmp_path / "own.csv", index=False)
    flops = load_table(tmp_path / "own.csv", quiet=True).attrs["flops"]
    assert flops.name == "table" and flops.k == pytest.approx(0.1) and abs(flops.p) < 1e-9
    assert "fitted to the table's N, D and C" in flops.describe()
    pd.DataFrame({"N": N, "D": D, "C": 6 * N * D, "loss": [3.0, 2.9, 2.8, 2.7]}) \
        .to_csv(tmp_path / "plain.csv", index=False)
    assert load_table(tmp_path / "plain.csv", quiet=True).attrs["flops"] == FlopConvention()


def test_missing_C_is_derived_by_the_convention_of_the_other_runs(tmp_path):
    N = np.array([1e8, 2e8, 4e8, 8e8])
    C = 6 * N * 2e9 * (1 + 30 * N ** -0.5)
    C[-1] = np.nan  # this run gives N and D only
    pd.DataFrame({"N": N, "D": 2e9, "C": C, "loss": [3.0, 2.9, 2.8, 2.7]}) \
        .to_csv(tmp_path / "mixed.csv", index=False)
    t = load_table(tmp_path / "mixed.csv", quiet=True)
    assert t["C"].iloc[-1] == pytest.approx(6 * 8e8 * 2e9 * (1 + 30 * 8e8 ** -0.5), rel=1e-9)
    assert "the convention of the other runs" in t.attrs["notes"][0]


def test_best_per_cell_keeps_the_best_run_and_the_attrs(sweep_records):
    t = load_table(sweep_records, quiet=True)
    assert has_sweep(t)
    best = best_per_cell(t)
    assert not has_sweep(best) and len(best) == t.groupby(["N", "D"]).ngroups
    assert np.allclose(np.sort(best["loss"]), np.sort(t.groupby(["N", "D"])["loss"].min()))
    assert best.attrs["flops"] == t.attrs["flops"]


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
    assert t.attrs["flops"] == FlopConvention()  # nothing says otherwise: plain 6ND


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


def test_optuna_storage_prefers_records_and_falls_back_to_attrs(tmp_path, capsys, synth):
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
    broken = tmp_path / "broken" / "run.json"
    broken.parent.mkdir()
    broken.write_text('{"schema_version": 1, "run_id": "cut')
    t4 = optuna.trial.create_trial(params={"lr": 2e-3}, distributions=dist, value=2.6,
                                   user_attrs={"record": str(broken), "N": 4e8, "D": 2e9})
    study.add_trials([t1, t2, t3, t4])
    t = load_table(url, quiet=True)
    err = capsys.readouterr().err
    assert f"trial 3 of study ladder: run record {broken} is truncated" in err
    assert sorted(t["run_id"]) == ["from-record", "ladder/1", "ladder/3"]
    row = t[t["run_id"] == "ladder/1"].iloc[0]
    assert row["N"] == 2e8 and row["loss"] == 2.7 and row["lr"] == 1e-3 and row["C"] == 2.4e18
    assert t[t["run_id"] == "ladder/3"].iloc[0]["loss"] == 2.6
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


def test_storage_password_stays_out_of_messages():
    with pytest.raises(AnalysisError, match="cannot open Optuna storage") as e:
        load_table("postgresql://alice:s3cret@127.0.0.1:1/optuna")
    assert "s3cret" not in str(e.value) and "postgresql://alice:***@127.0.0.1:1" in str(e.value)


@pytest.mark.parametrize("url, path", [
    ("sqlite:///optuna.db", Path("optuna.db")),
    ("sqlite:///runs/optuna.db?timeout=5", Path("runs/optuna.db")),
    ("sqlite:////srv/sweeps/optuna.db", Path("/srv/sweeps/optuna.db")),
    ("sqlite+pysqlite:///my%20sweep.db", Path("my sweep.db")),
    ("sqlite://", None),
    ("sqlite:///:memory:", None),
    ("postgresql://alice@db/optuna", None),
])
def test_sqlite_file_reads_the_database_path_as_sqlalchemy_does(url, path):
    assert sqlite_file(url) == path
    if path is not None:  # the reference: the file SQLAlchemy itself would open
        assert Path(make_url(url).database) == path


def test_numbers_written_with_a_suffix_are_read_and_other_text_is_named(tmp_path, capsys):
    sizes = ["20M", "1.5B", "300k", "2 K", "4G", "1T", "twenty", "5m"]
    pd.DataFrame({"N": sizes, "D": 1e9, "loss": np.linspace(3.0, 2.3, len(sizes))}) \
        .to_csv(tmp_path / "sizes.csv", index=False)
    t = load_table(tmp_path / "sizes.csv")
    assert t["N"].tolist() == [2e7, 1.5e9, 3e5, 2e3, 4e9, 1e12]
    assert not any(c.startswith("text of") for c in t.columns)
    err = capsys.readouterr().err
    assert "2 bad row(s) left out" in err and "N='twenty'" in err and "N='5m'" in err  # 5m: milli or mega?
    assert "N=nan" not in err


def test_a_loss_far_from_the_others_is_named_and_kept(capsys, synth, chinchilla_table):
    N, D = np.meshgrid([1e7, 3e7, 1e8, 3e8, 1e9], [1e9, 4e9, 1.6e10])
    t = pd.DataFrame({"N": N.ravel(), "D": D.ravel(), "run_id": [f"r{i}" for i in range(15)]})
    t["loss"] = synth.chinchilla_loss(t["N"], t["D"])
    t.loc[3, "loss"] = 1e300
    t.loc[7, "loss"] = 0.9 * t.loc[7, "loss"]  # a noisy run, not a wild one
    assert len(load_table(t)) == 15
    err = capsys.readouterr().err
    assert "scalelab: warning: 1 run(s) whose loss lies far from the others' (median " in err
    assert "\n  row 3 (r3): loss=1e+300" in err and "r7" not in err
    load_table(chinchilla_table)  # losses from 2.1 to 5.8, over three decades of N and four of D
    assert "far from the others" not in capsys.readouterr().err
