"""Synthetic data with known parameters, and run.json fixtures written to tmp folders."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from scalelab.record import SKIP_DIRS, flops_per_token

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
HP_TRUE = {"a": 0.9, "alpha": -0.7, "beta": 0.3, "b": 0.6, "gamma": 0.55}  # bs in tokens
DEPTH = 4  # layers of the synthetic records' models


def chinchilla_loss(N, D, P=TRUE):
    return P["E"] + P["A"] / np.asarray(N) ** P["alpha"] + P["B"] / np.asarray(D) ** P["beta"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_home"))
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def chinchilla_table():
    """240 runs from known Chinchilla parameters with 1% multiplicative noise."""
    rng = np.random.default_rng(1234)
    n = 240
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), n))
    D = np.exp(rng.uniform(np.log(1e8), np.log(1e12), n))
    loss = chinchilla_loss(N, D) * np.exp(rng.normal(0, 0.01, n))
    return pd.DataFrame({"N": N, "D": D, "C": 6 * N * D, "loss": loss})


@pytest.fixture(scope="session")
def chinchilla_fit(chinchilla_table):
    """One fit with 200 bootstrap refits, shared by the tests that only read it."""
    from scalelab.analysis.laws import ChinchillaLaw

    return ChinchillaLaw().fit(chinchilla_table, bootstrap=200, seed=0)


@pytest.fixture(scope="session")
def isoflop_table():
    rng = np.random.default_rng(7)
    rows = []
    for C in (1e18, 1e19, 1e20, 1e21):
        for N in np.geomspace(1e7, 1e11, 13):
            D = C / (6 * N)
            if D < 1e7:
                continue
            rows.append({"N": N, "D": D, "C": C,
                         "loss": chinchilla_loss(N, D) * np.exp(rng.normal(0, 0.002))})
    return pd.DataFrame(rows)


def hp_optimum(N, D, P=HP_TRUE):
    return P["a"] * N ** P["alpha"] * D ** P["beta"], P["b"] * D ** P["gamma"]


def sweep_rows(seed=0, noise=0.0005, Ns=(1e8, 2e8, 4e8, 8e8), Ds=(2e9, 8e9, 3.2e10),
               context=1024):
    """An lr x batch-size grid per (N, D): a quadratic bowl around the known lr*, bs* laws."""
    rng = np.random.default_rng(seed)
    rows = []
    lrs = 2.0 ** np.arange(-14, -4, 0.5)
    bss = 2 ** np.arange(4, 12)  # sequences
    for N in Ns:
        for D in Ds:
            lr_opt, bs_opt = hp_optimum(N, D)
            base = chinchilla_loss(N, D)
            for lr in lrs:
                for bs in bss:
                    du, dv = np.log(lr / lr_opt), np.log(bs * context / bs_opt)
                    loss = base * (1 + 0.01 * du ** 2 + 0.004 * dv ** 2 + 0.002 * du * dv) \
                        * np.exp(rng.normal(0, noise))
                    rows.append({"N": N, "D": D, "lr": lr, "batch_size": int(bs), "loss": loss,
                                 "initial_loss": 11.0, "context": context})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def sweep_table():
    t = sweep_rows()
    t["C"] = 6 * t["N"] * t["D"]
    t["batch_tokens"] = t["batch_size"] * t["context"]
    t["status"] = "completed"
    return t


def record_C(N, D, context=256, depth=DEPTH):
    """C as a training run records it: 6N plus the attention scores per token, times D.

    The width follows from N = 12 depth width^2, so the attention share of 6N falls as N^-1/2.
    """
    width = np.sqrt(np.asarray(N, float) / (12 * depth))
    return flops_per_token(np.asarray(N, float), depth, context, width) * np.asarray(D, float)


def make_record(run_id, N, D, loss, lr=1e-3, batch_size=32, status="completed", study="s",
                trial=0, initial_loss=10.0, extra_hparams=None, context=256):
    C = float(record_C(int(N), int(D), context)) if N > 0 else float(6 * N * D)
    return {
        "schema_version": 1, "run_id": run_id, "study": study, "trial": trial, "status": status,
        "error": None, "config": {"model": {"context": context, "depth": DEPTH}}, "overrides": [],
        "scale": {"N": int(N), "N_total": int(N * 1.1), "D": int(D), "C": C,
                  "flops_per_token": C / int(D), "model": "gpt"},
        "hparams": {"lr": lr, "batch_size": batch_size, "weight_decay": 0.1, "warmup": 0.01,
                    "schedule": "cosine", **(extra_hparams or {})},
        "metrics": {"final_val_loss": loss, "best_val_loss": loss, "initial_loss": initial_loss,
                    "steps": 100, "tokens_seen": int(D), "tokens_per_second": 1e5,
                    "wall_seconds": 3.0},
        "curve": [{"step": 1, "tokens": 10, "val_loss": initial_loss}],
        "environment": {"git_sha": None, "packages": {}, "device": "cpu", "seed": 0},
        "started_at": "2026-01-01T00:00:00", "ended_at": "2026-01-01T00:01:00"}


def write_records(folder: Path, records) -> list[Path]:
    paths = []
    for i, rec in enumerate(records):
        d = folder / "multirun" / f"{i // 10}" / f"{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "run.json").write_text(json.dumps(rec))
        paths.append(d / "run.json")
    return paths


@pytest.fixture(scope="session")
def sweep_records(tmp_path_factory, sweep_table):
    """The synthetic sweep as run.json records, plus decoys in folders that must be skipped.

    Written once per session: the tests only read it.
    """
    root = tmp_path_factory.mktemp("sweep") / "runs"
    recs = [make_record(f"r{i}", r.N, r.D, float(r.loss), lr=float(r.lr),
                        batch_size=int(r.batch_size), trial=i, context=int(r.context),
                        initial_loss=11.0)
            for i, r in enumerate(sweep_table.itertuples())]
    write_records(root, recs)
    for skip in sorted(SKIP_DIRS):
        d = root / "multirun" / "0" / "0" / skip
        d.mkdir(parents=True)
        (d / "run.json").write_text(json.dumps(make_record("decoy", 1e9, 1e9, 0.1)))
    return root


@pytest.fixture
def synth():
    """The helpers above for the test modules (importing conftest depends on pytest's import mode)."""
    return SimpleNamespace(TRUE=TRUE, HP_TRUE=HP_TRUE, chinchilla_loss=chinchilla_loss,
                           sweep_rows=sweep_rows, make_record=make_record, record_C=record_C,
                           write_records=write_records)


@pytest.fixture(scope="session")
def ladder_records(tmp_path_factory):
    """An lr x batch grid at D = 20N for four model sizes, as run records.

    Along such a ladder lr* = a N^-0.7 D^0.3 falls as C^-0.2, so a law in terms of C feels
    how C is counted: the records' C is 2% to 6% above 6ND.
    """
    root = tmp_path_factory.mktemp("ladder") / "runs"
    t = sweep_rows(seed=3, Ns=(1e8, 2e8, 4e8, 8e8), Ds=(2e9, 4e9, 8e9, 1.6e10))
    t = t[t["D"] == 20 * t["N"]]
    write_records(root, [make_record(f"l{i}", r.N, r.D, float(r.loss), lr=float(r.lr),
                                     batch_size=int(r.batch_size), trial=i, context=int(r.context))
                         for i, r in enumerate(t.itertuples())])
    return root
