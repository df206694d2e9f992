"""The `scalelab` subcommands end to end: fit, predict, sensitivity, report (+ W&B offline)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import wandb

from scalelab.analysis.dashboards import DashboardSpec
from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.laws import HparamsLaw
from scalelab.analysis.table import load_table
from scalelab.wandb_keys import FITS_COLUMNS

from tests.analysis.command import run_command
from tests.wandb_file import find_runs, read_run


_run = run_command


@pytest.fixture
def chin_csv(tmp_path, chinchilla_table):
    p = tmp_path / "published.csv"
    chinchilla_table.rename(columns={"N": "Model Size", "C": "Training FLOP"}) \
        .drop(columns=["D"]).to_csv(p, index=False)
    return p


def test_fit_published_table_with_map_then_predict(capsys, tmp_path, chin_csv):
    fit = tmp_path / "fits" / "lnd.json"
    rc, out, err = _run(capsys, "fit", str(chin_csv), "--law", "chinchilla", "--map",
                        "N=Model Size", "--map", "C=Training FLOP", "--map", "loss=loss",
                        "--bootstrap", "50", "--json", str(fit))
    assert rc == 0, err
    assert "D derived as C/(6N)" in err and "D derived as C/(6N)" in out
    d = json.loads(fit.read_text())
    assert d["law"] == "chinchilla" and set(d["ci"]) == {"E", "A", "B", "alpha", "beta"}
    rc, out, _ = _run(capsys, "predict", "--fit", str(fit), "--N", "3e8", "--D", "6e9", "--json")
    pred = json.loads(out)
    assert pred["loss_interval"][0] < pred["loss"] < pred["loss_interval"][1]
    rc, out, _ = _run(capsys, "predict", "--fit", str(fit), "--C", "1e21", "--json")
    pred = json.loads(out)
    assert np.isclose(6 * pred["N_opt"] * pred["D_opt"], 1e21)
    assert pred["N_opt_interval"][0] <= pred["N_opt"] <= pred["N_opt_interval"][1]


def test_fit_hparams_from_records_and_predict_both(capsys, tmp_path, sweep_records, synth):
    hp = tmp_path / "hp.json"
    lnd = tmp_path / "lnd.json"
    rc, out, err = _run(capsys, "fit", str(sweep_records), "--law", "hparams", "--form",
                        "steplaw", "--json", str(hp), "--bootstrap", "10")
    assert rc == 0, err
    assert "leave-one-N-out" in out
    rc, _, err = _run(capsys, "fit", str(sweep_records), "--law", "chinchilla", "--json", str(lnd),
                      "--bootstrap", "10")
    assert rc == 0 and "fitting the best run of each cell" in err
    rc, out, _ = _run(capsys, "predict", "--fit", str(lnd), "--fit", str(hp), "--N", "3e8",
                      "--D", "6e9", "--json")
    pred = json.loads(out)
    for k in ("loss", "lr", "batch_size"):
        lo, hi = pred[f"{k}_interval"]
        assert lo < pred[k] < hi, k
    assert pred["batch_size_unit"] == "tokens"
    assert pred["notes"] == []  # both laws read N and D, as given
    # --N with the C a run of that size records finds the run's D, hence the same lr*, bs*
    rc, out, _ = _run(capsys, "predict", "--fit", str(hp), "--N", "3e8", "--C",
                      str(float(synth.record_C(3e8, 6e9, 1024))), "--json")
    by_c = json.loads(out)
    assert by_c["lr"] == pytest.approx(pred["lr"], rel=1e-9)
    assert by_c["batch_size"] == pytest.approx(pred["batch_size"], rel=1e-9)
    (note,) = by_c["notes"]
    assert note.startswith(f"{hp}: D = 6e+09 from --N, --C by C = 6ND(1 + ")
    assert "the attention term, fitted to the run records" in note


@pytest.mark.parametrize("law", ["power", "isoflop", "auto"])
def test_fit_other_laws(capsys, tmp_path, isoflop_table, law):
    p = tmp_path / "iso.csv"
    isoflop_table.to_csv(p, index=False)
    rc, out, err = _run(capsys, "fit", str(p), "--law", law, "--json", str(tmp_path / "f.json"))
    assert rc == 0, err
    assert json.loads((tmp_path / "f.json").read_text())["law"] == law
    rc, out, err = _run(capsys, "predict", "--fit", str(tmp_path / "f.json"), "--C", "1e22",
                        "--json")
    assert rc == 0, err


def test_deepseek_law_queried_by_N_and_D_counts_C_as_the_records(capsys, tmp_path,
                                                                  ladder_records):
    fit = tmp_path / "deepseek.json"
    rc, out, err = _run(capsys, "fit", str(ladder_records), "--law", "hparams", "--form",
                        "deepseek", "--optimum", "surface", "--json", str(fit))
    assert rc == 0, err
    assert "FLOPs: C = 6ND(1 + " in out
    run = load_table(ladder_records, quiet=True).iloc[-1]

    def lr(*query):
        rc, out, err = _run(capsys, "predict", "--fit", str(fit), *query, "--json")
        assert rc == 0, err
        return json.loads(out)

    by_nd = lr("--N", str(run.N), "--D", str(run.D))
    assert by_nd["lr"] == pytest.approx(lr("--C", str(run.C))["lr"], rel=1e-9)
    assert abs(lr("--C", str(6 * run.N * run.D))["lr"] / by_nd["lr"] - 1) > 3e-3
    derived = [n for n in by_nd["notes"] if "from --N, --D" in n]
    assert len(derived) == 1 and "from --N, --D by C = 6ND(1 + " in derived[0]


def test_each_command_imports_only_what_it_needs(tmp_path, chinchilla_table):
    """Whole processes, as a user starts them; each step reports what it has imported: neither
    torch nor matplotlib for fit and predict, not even pandas for data prepare."""
    table = tmp_path / "t.csv"
    chinchilla_table.iloc[:60].to_csv(table, index=False)
    fit = tmp_path / "power.json"
    script = f"""
import json, sys
from scalelab.cli import main
seen = {{}}
for name, argv in [("data prepare --help", ["data", "prepare", "--help"]),
                   ("fit --help", ["fit", "--help"]),
                   ("fit", ["fit", {str(table)!r}, "--law", "power", "--json", {str(fit)!r}]),
                   ("predict", ["predict", "--fit", {str(fit)!r}, "--C", "1e21"])]:
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    seen[name] = [rc, sorted(m for m in ("torch", "matplotlib", "pandas") if m in sys.modules)]
print(json.dumps(seen), file=sys.stderr)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    seen = json.loads(done.stderr.strip().splitlines()[-1])
    assert seen == {"data prepare --help": [0, []], "fit --help": [0, ["pandas"]], "fit": [0, ["pandas"]],
                    "predict": [0, ["pandas"]]}, done.stderr


def test_sensitivity_command(capsys, tmp_path, synth):
    t = synth.sweep_rows(Ns=(1e8, 4e8), Ds=(2e9,))
    t = t[(t["batch_size"] >= 64) & (t["batch_size"] <= 512)]
    recs = [synth.make_record(f"r{i}", r.N, r.D, float(r.loss), lr=float(r.lr),
                        batch_size=int(r.batch_size), initial_loss=11.0)
            for i, r in enumerate(t.itertuples())]
    recs.append(synth.make_record("div", 1e8, 2e9, None, lr=0.05, status="diverged",
                            initial_loss=11.0))
    synth.write_records(tmp_path / "runs", recs)
    rc, out, err = _run(capsys, "sensitivity", str(tmp_path / "runs"), "--json",
                        str(tmp_path / "sens.json"))
    assert rc == 0, err
    assert "Importance by scale (fanova)" in out and "Learning-rate sensitivity" in out
    d = json.loads((tmp_path / "sens.json").read_text())
    assert len(d["lr_sensitivity"]) == 2
    # the diverged run enters at the initial loss
    assert max(r["runs"] for r in d["lr_sensitivity"]) == (len(t) // 2) + 1


@pytest.mark.slow  # draws every figure and writes a W&B run: seconds
def test_report_writes_files_and_offline_wandb_run(capsys, tmp_path, monkeypatch, synth):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    (tmp_path / "wb").mkdir()
    t = synth.sweep_rows(Ns=(1e8, 2e8, 4e8), Ds=(2e9, 8e9))
    t = t[(t["batch_size"] >= 64) & (t["batch_size"] <= 256) & (t["lr"] < 0.006)
          & (t["lr"] > 2e-4)]
    recs = [synth.make_record(f"r{i}", r.N, r.D, float(r.loss), lr=float(r.lr),
                        batch_size=int(r.batch_size), study="ladder")
            for i, r in enumerate(t.itertuples())]
    synth.write_records(tmp_path / "runs", recs)
    out_dir = tmp_path / "report"
    rc, out, err = _run(capsys, "report", str(tmp_path / "runs"), "--out", str(out_dir),
                        "--bootstrap", "10", "--wandb")
    assert rc == 0, err
    html = (out_dir / "index.html").read_text()
    for name in ("loss_vs_compute", "loss_vs_lr", "hparams_vs_scale", "importance",
                 "lr_sensitivity", "residuals"):
        assert (out_dir / f"{name}.png").stat().st_size > 1000, name
    assert html.count("data:image/png;base64,") >= 6 and "src=\"http" not in html
    fits = json.loads((out_dir / "fits.json").read_text())
    assert {"chinchilla", "hparams_near-best", "hparams_surface"} <= set(fits)
    # the analysis run, under the report folder: named, grouped, its runs named, fits as a Table
    wandb.teardown()  # the file is complete once W&B's service has stopped (finish() may leave it unflushed)
    [folder] = find_runs(out_dir)
    run = read_run(folder)
    assert (run.name, run.group, run.job_type) == ("analysis of runs", "ladder", "analysis")
    assert run.config["study"] == "ladder" and run.config["run_ids"] == sorted(r["run_id"] for r in recs)
    [table_file] = (folder / "files" / "media" / "table").glob("fits_*.table.json")
    logged = json.loads(table_file.read_text())
    assert logged["columns"] == list(FITS_COLUMNS)
    rows = {(r[0], r[2]): r for r in logged["data"]}
    for law in ("chinchilla", "hparams_near-best"):
        for name, value in fits[law]["params"].items():
            row = rows[(law, name)]
            assert row[3] == pytest.approx(value) and row[6] == fits[law]["n_points"]
            assert [row[4], row[5]] == pytest.approx(fits[law]["ci"][name])
    assert {r[0]: r[9] for r in logged["data"] if isinstance(r[9], str)} == fits["_errors"]  # why not fitted
    assert any(rec.HasField("artifact") for rec in run.records)
    assert {f"plots/{name}" for name in ("loss_vs_compute", "residuals")} <= {k for h in run.history for k in h}
    spec = DashboardSpec.read(out_dir)  # the dashboards' definitions, beside the report
    assert (spec.runs_key, spec.runs_value, spec.searched) == ("study", "ladder", ())
    assert not list((tmp_path / "wb").rglob("offline-run-*"))  # nothing in W&B's own folder


def _err(capsys, *argv):
    rc, out, err = _run(capsys, *argv)
    assert rc == 2
    assert err.strip().splitlines()[-1].startswith("scalelab: error: ")
    assert "Traceback" not in err
    return err


def test_bad_inputs_give_clear_messages(capsys, tmp_path, chinchilla_table):
    (tmp_path / "empty.csv").write_text("N,D,loss\n")
    assert "empty" in _err(capsys, "fit", str(tmp_path / "empty.csv"), "--law", "chinchilla")
    one = pd.DataFrame({"N": 1e8, "D": [1e9, 2e9, 4e9, 8e9, 1.6e10, 3.2e10],
                        "loss": [3.0, 2.9, 2.8, 2.7, 2.6, 2.5]})
    one.to_csv(tmp_path / "one.csv", index=False)
    assert "at least two scales" in _err(capsys, "fit", str(tmp_path / "one.csv"), "--law",
                                         "chinchilla")
    one.iloc[:3].assign(N=[1e8, 2e8, 4e8]).to_csv(tmp_path / "few.csv", index=False)
    assert "only 3 points" in _err(capsys, "fit", str(tmp_path / "few.csv"), "--law",
                                   "chinchilla")
    assert "column 'Size' named in --map N=Size does not exist" in _err(
        capsys, "fit", str(tmp_path / "one.csv"), "--law", "chinchilla", "--map", "N=Size")
    bad = chinchilla_table.copy()
    bad.loc[0, "loss"] = -1.0
    bad.loc[1, "N"] = float("inf")
    bad.to_csv(tmp_path / "bad.csv", index=False)
    fit = tmp_path / "lnd.json"
    rc, out, err = _run(capsys, "fit", str(tmp_path / "bad.csv"), "--law", "chinchilla",
                        "--json", str(fit))
    assert rc == 0 and "2 bad row(s) left out" in err and "loss=-1.0" in err and "N=inf" in err
    assert "(238 points)" in out
    # a fit file of another law
    with pytest.raises(AnalysisError, match="of law 'chinchilla', not 'hparams'"):
        HparamsLaw.from_dict(json.loads(fit.read_text()))
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    assert "not a scalelab fit file" in _err(capsys, "predict", "--fit", str(tmp_path / "x.json"),
                                             "--N", "1e9", "--D", "1e10")
    assert "needs --N and --D" in _err(capsys, "predict", "--fit", str(fit), "--N", "1e9")


def _refused(capsys, *argv) -> str:
    """The one stderr line of a refused command (exit status 2, nothing on stdout)."""
    rc, out, err = _run(capsys, *argv)
    lines = err.strip().splitlines()
    assert (rc, out, len(lines)) == (2, "", 1), err
    assert lines[0].startswith("scalelab: error: ")
    return lines[0]


def _strict_json(text: str):
    """json.loads that rejects NaN and Infinity, as strict parsers (JavaScript, jq) do."""
    def reject(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=reject)


@pytest.fixture
def small_csv(tmp_path, chinchilla_table):
    p = tmp_path / "small.csv"
    chinchilla_table.iloc[:60].to_csv(p, index=False)
    return p


@pytest.mark.parametrize("name, content, expected", [
    ("corrupt.parquet", bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8)),
     "expected a Parquet file"),
    ("binary.csv", b"\x00\xff\xfe\x89PNG\x00\x00\xc3(" * 20, "expected UTF-8 text"),
    ("empty.csv", b"", "expected UTF-8 text"),
])
@pytest.mark.parametrize("command", [["fit", "--law", "power"], ["sensitivity"]])
def test_unreadable_table_file_is_one_line_naming_the_file(capsys, tmp_path, name, content,
                                                           expected, command):
    path = tmp_path / name
    path.write_bytes(content)
    line = _refused(capsys, command[0], str(path), *command[1:])
    assert line.startswith(f"scalelab: error: cannot read {path} (") and expected in line


@pytest.mark.parametrize("args, allowed", [
    (["fit", "{csv}", "--law", "power", "--bootstrap", "-5"],
     "argument --bootstrap: expected a whole number >= 0, got '-5'"),
    (["fit", "{csv}", "--law", "power", "--bootstrap", "2.5"],
     "argument --bootstrap: expected a whole number >= 0, got '2.5'"),
    (["fit", "{csv}", "--law", "power", "--seed", "-1"],
     "argument --seed: expected a whole number >= 0, got '-1'"),
    (["fit", "{csv}", "--law", "power", "--level", "1.5"],
     "argument --level: expected a level strictly between 0 and 1 (0.95 for 95%), got '1.5'"),
    (["fit", "{csv}", "--law", "power", "--level", "0"],
     "argument --level: expected a level strictly between 0 and 1 (0.95 for 95%), got '0'"),
    (["fit", "{csv}", "--law", "power", "--context", "0"],
     "argument --context: expected a finite number > 0, got '0'"),
    (["sensitivity", "{csv}", "--context", "-2048"],
     "argument --context: expected a finite number > 0, got '-2048'"),
    (["report", "{csv}", "--out", "{out}", "--bootstrap", "-5"],
     "argument --bootstrap: expected a whole number >= 0, got '-5'"),
    (["report", "{csv}", "--out", "{out}", "--context", "nan"],
     "argument --context: expected a finite number > 0, got 'nan'"),
])
def test_nonsensical_numbers_are_refused_at_parsing(capsys, tmp_path, small_csv, args, allowed):
    out_dir = tmp_path / "report"
    argv = [a.format(csv=small_csv, out=out_dir) for a in args]
    assert _refused(capsys, *argv) == f"scalelab: error: {allowed}"
    assert not out_dir.exists()


def test_other_argument_errors_are_one_line_too(capsys, small_csv):
    assert "invalid choice: 'pwr'" in _refused(capsys, "fit", str(small_csv), "--law", "pwr")
    assert _refused(capsys, "fit", str(small_csv)) == \
        "scalelab: error: the following arguments are required: --law"


def test_report_out_naming_a_file_is_refused(capsys, tmp_path, small_csv):
    existing = tmp_path / "notes.txt"
    existing.write_text("kept")
    line = _refused(capsys, "report", str(small_csv), "--out", str(existing), "--bootstrap", "0")
    assert line == (f"scalelab: error: cannot make the report folder {existing} (File exists); "
                    "name a new or existing folder")
    assert existing.read_text() == "kept"


@pytest.mark.parametrize("scale", [["--N", "-1", "--D", "2e10"], ["--C", "0"],
                                   ["--N", "nan", "--D", "2e10"], ["--N", "1e9", "--D", "inf"]])
@pytest.mark.parametrize("as_json", [[], ["--json"]])
def test_predict_refuses_non_positive_or_non_finite_scale(capsys, tmp_path, chinchilla_fit,
                                                          scale, as_json):
    fit = tmp_path / "lnd.json"
    chinchilla_fit.save(fit)
    line = _refused(capsys, "predict", "--fit", str(fit), *scale, *as_json)
    bad = next(a for a in scale if a in ("-1", "0", "nan", "inf"))
    option = scale[scale.index(bad) - 1]
    assert line == f"scalelab: error: argument {option}: expected a finite number > 0, got '{bad}'"


def test_predict_json_writes_non_finite_numbers_as_null(capsys, tmp_path, chinchilla_fit):
    d = chinchilla_fit.to_dict()
    d["metrics"]["rmse_log"] = float("nan")  # a fit file may hold NaN: its intervals are NaN, so none
    d["params"]["E"] = float("nan")
    fit = tmp_path / "nan.json"
    fit.write_text(json.dumps(d))
    rc, out, err = _run(capsys, "predict", "--fit", str(fit), "--N", "3e8", "--D", "6e9",
                        "--json")
    assert rc == 0, err
    pred = _strict_json(out)
    assert pred["loss"] is None and pred["loss_interval"] is None


def test_missing_sqlite_storage_is_refused_and_not_created(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _refused(capsys, "fit", "sqlite:///nonexistent.db", "--law", "power")
    assert line == ("scalelab: error: cannot open Optuna storage sqlite:///nonexistent.db: the "
                    "SQLite database nonexistent.db does not exist; name an existing database "
                    "file")
    absolute = tmp_path / "sweeps" / "optuna.db"
    assert "does not exist" in _refused(capsys, "sensitivity", f"sqlite:///{absolute}")
    assert list(tmp_path.iterdir()) == []


def test_sync_finds_offline_runs_at_any_depth_and_refuses_bad_input(capsys, tmp_path):
    runs = [tmp_path / "runs" / "sweeps" / "lr" / f"model.width={w}" / f"trial_{t}" / "wandb" / f"offline-run-{w}{t}"
            for w in (8, 16) for t in (0, 1)]
    runs.append(tmp_path / "runs" / "2026-01-01" / "12-00-00_gpt_s" / "wandb" / "offline-run-x")
    for p in runs:
        p.mkdir(parents=True)
    rc, out, err = _run(capsys, "sync", str(tmp_path / "runs"), "--dry-run")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == f"5 offline W&B run(s), 0 dashboard definition(s) below {tmp_path / 'runs'}"
    assert sorted(Path(line.strip()) for line in lines[1:]) == sorted(runs)

    assert "is not a folder" in _err(capsys, "sync", str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    assert "no offline W&B run (offline-run-*) and no wandb_dashboards.json below" in _err(
        capsys, "sync", str(tmp_path / "empty"))
    (tmp_path / "runs" / "wandb_dashboards.json").write_text("{not json")
    err = _err(capsys, "sync", str(tmp_path / "runs"), "--dry-run")  # refused before any upload
    assert f"cannot read W&B dashboard spec {tmp_path / 'runs' / 'wandb_dashboards.json'}" in err


def test_sync_hands_a_resumed_runs_files_over_in_start_order(capsys, tmp_path, monkeypatch):
    """A run killed and resumed leaves two offline files of one id; `wandb sync` gets them in the
    order they started, whatever the folders' names, then the other runs by their start."""
    later = tmp_path / "runs" / "a_resumed" / "wandb" / "offline-run-20260102_090000-abc"
    first = tmp_path / "runs" / "b_first" / "wandb" / "offline-run-20260102_080000-abc"
    again = tmp_path / "runs" / "b_first" / "wandb" / "offline-run-20260102_100000-abc"
    other = tmp_path / "runs" / "c" / "wandb" / "offline-run-20260101_120000-xyz"
    for p in (later, first, again, other):
        p.mkdir(parents=True)
    rc, out, err = _run(capsys, "sync", str(tmp_path / "runs"), "--dry-run")
    assert rc == 0, err
    assert [Path(line.strip()) for line in out.splitlines()[1:]] == [other, first, later, again]
    handed = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: handed.append(cmd) or SimpleNamespace(returncode=0))
    rc, out, err = _run(capsys, "sync", str(tmp_path / "runs"))
    assert rc == 0, err
    assert handed[0][-4:] == [str(other), str(first), str(later), str(again)]


def _small_ladder(synth, path: Path, millions_from: float = np.inf) -> Path:
    """15 runs (5 sizes x 3 budgets) of the known law as a CSV; N from `millions_from` up
    written in millions, as a table that mixes units has it."""
    N, D = np.meshgrid([1e7, 3e7, 1e8, 3e8, 1e9], [1e9, 4e9, 1.6e10])
    t = pd.DataFrame({"N": N.ravel(), "D": D.ravel()})
    t["loss"] = synth.chinchilla_loss(t["N"], t["D"])
    t.loc[t["N"] >= millions_from, "N"] /= 1e6
    t["C"] = 6 * t["N"] * t["D"]
    t.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("law", [["chinchilla"], ["auto"], ["power", "--x", "N"]])
def test_a_loss_law_whose_loss_rises_with_size_is_refused(capsys, tmp_path, synth, law):
    mixed = _small_ladder(synth, tmp_path / "mixed.csv", millions_from=1e8)
    line = _refused(capsys, "fit", str(mixed), "--law", *law)
    assert re.search(r"fit gives alpha = -\d[\d.]*: the loss does not fall with model size N", line), line
    assert line.endswith("check N, D and C for mixed units (some rows in millions or billions, others in "
                         "units) and --map for a column mapped wrong")


def test_a_power_law_of_another_quantity_may_fall_with_scale(capsys, tmp_path):
    """The best batch size grows with compute: a negative exponent, and no reason to refuse."""
    C = np.geomspace(1e17, 1e21, 8)
    pd.DataFrame({"C": C, "loss": 3 - 0.1 * np.log10(C / 1e17), "batch_size": 64 * (C / 1e17) ** 0.3}) \
        .to_csv(tmp_path / "bs.csv", index=False)
    rc, out, err = _run(capsys, "fit", str(tmp_path / "bs.csv"), "--law", "power", "--y", "batch_size",
                        "--json", str(tmp_path / "bs.json"))
    assert rc == 0, err
    assert json.loads((tmp_path / "bs.json").read_text())["params"]["alpha"] == pytest.approx(-0.3, abs=0.01)


@pytest.mark.parametrize("law", [["chinchilla"], ["auto"], ["power"], ["hparams"]])
def test_a_constant_loss_is_refused_before_fitting(capsys, tmp_path, synth, law):
    path = tmp_path / "flat.csv"
    table = synth.sweep_rows(Ns=(1e8, 2e8, 4e8, 8e8, 1.6e9), Ds=(2e9, 8e9)).assign(loss=2.5)
    table.assign(C=6 * table["N"] * table["D"]).to_csv(path, index=False)
    line = _refused(capsys, "fit", str(path), "--law", *law, "--per-cell", "all")
    assert line == "scalelab: error: the loss does not vary: every row is 2.5; a law needs runs whose loss differs"


def test_a_sweep_of_lr_alone_has_no_batch_size_law(capsys, tmp_path, sweep_table):
    path = tmp_path / "lr_only.csv"
    sweep_table[sweep_table["batch_size"] == 64].to_csv(path, index=False)
    fit = tmp_path / "hp.json"
    rc, out, err = _run(capsys, "fit", str(path), "--law", "hparams", "--bootstrap", "10", "--json", str(fit))
    assert rc == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["a", "alpha", "beta"]
    assert not re.search(r"^ +(b|gamma) = ", out, re.M)
    note = "batch size not varied: every run at 65536 tokens; no batch-size law is fitted"
    assert note in out
    saved = json.loads(fit.read_text())
    assert set(saved["params"]) == {"a", "alpha", "beta"} and saved["inputs"]["batch_size_varied"] is False
    assert any(n.startswith(note) for n in saved["inputs"]["notes"])
    rc, out, err = _run(capsys, "predict", "--fit", str(fit), "--N", "3e8", "--D", "6e9", "--json")
    assert rc == 0, err
    pred = json.loads(out)
    assert pred["lr"] > 0 and not any(k.startswith("batch_size") for k in pred)
    rc, out, err = _run(capsys, "predict", "--fit", str(fit), "--N", "3e8", "--D", "6e9")
    assert rc == 0 and "lr = " in out and "batch_size" not in out, out


def test_fits_show_no_numpy_warnings(tmp_path, synth):
    """A whole process, as a user starts it: a 1e300 loss sends a bootstrap refit's exponentials to
    overflow, which numpy reports with its source lines; only scalelab's own lines may reach stderr."""
    path = _small_ladder(synth, tmp_path / "wild.csv")
    table = pd.read_csv(path)
    table.loc[3, "loss"] = 1e300
    table.to_csv(path, index=False)
    script = ("import sys; from scalelab.cli import main; "
              f"sys.exit(main(['fit', {str(path)!r}, '--law', 'chinchilla', '--bootstrap', '20']))")
    done = subprocess.run([sys.executable, "-W", "always::RuntimeWarning", "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "alpha" in done.stdout
    assert "Warning" not in done.stderr and ".py:" not in done.stderr, done.stderr
    assert all(line.startswith(("scalelab: warning: ", "  row ")) for line in done.stderr.splitlines()), \
        done.stderr
