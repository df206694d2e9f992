"""What `scalelab report` computes from a run table: the laws it supports, why the others could
not be fitted, the sensitivity tables, and what the table itself is (source, size, notes, FLOPs).

A plain data object, drawn by `figures`, shown by `page`, written to `fits.json` and logged by
`analysis_run`; nothing here draws or writes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .errors import AnalysisError
from .laws import AutoLaw, ChinchillaLaw, HparamsLaw, Law, PowerLaw, SparsityLaw
from .laws.sparsity import sparsity
from .sensitivity import importance_by_scale, lr_sensitivity
from .table import best_per_cell, flop_convention, has_sweep, hparam_columns


@dataclass
class Findings:
    source: str  # where the runs came from (a folder, a file, a storage URL)
    runs: int
    scales: int  # distinct (N, D)
    notes: list[str]  # what loading the table (and leaving runs out) had to say
    flops: str  # how the table's C relates to N and D
    laws: dict[str, Law] = field(default_factory=dict)  # fitted, by name
    errors: dict[str, str] = field(default_factory=dict)  # why a law (or table) is missing, by name
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # lr_sensitivity, importance (long)

    def to_dict(self) -> dict[str, Any]:
        """`fits.json`: each law as `scalelab fit --json` writes it, then the tables, notes and errors."""
        fits: dict[str, Any] = {name: law.to_dict() for name, law in self.laws.items()}
        fits["_tables"] = {k: v.to_dict(orient="records") for k, v in self.tables.items()}
        fits["_notes"] = list(self.notes)
        fits["_errors"] = self.errors
        return fits


def analyse(table: pd.DataFrame, bootstrap: int = 0, seed: int = 0,
            all_runs: pd.DataFrame | None = None) -> Findings:
    """Fit every law the table supports; collect sensitivity from `all_runs` (diverged runs
    included) where given, else from the table."""
    found = Findings(source=str(table.attrs.get("source", "")), runs=len(table),
                     scales=table.groupby(["N", "D"]).ngroups, notes=list(table.attrs.get("notes", [])),
                     flops=flop_convention(table).describe())

    def fit(name: str, make) -> None:
        try:
            found.laws[name] = make()
        except AnalysisError as e:
            found.errors[name] = str(e)

    dense = table
    if is_sparse(table):  # the other laws know no sparsity: they take the dense runs alone
        fit("sparsity", lambda: SparsityLaw().fit(table, bootstrap=min(bootstrap, 200), seed=seed))
        dense = table[~is_moe(table)]
        found.notes.append(f"the laws other than the sparsity law are fitted to the {len(dense)} dense runs; "
                           f"the {len(table) - len(dense)} mixture-of-experts runs enter the sparsity law")
    if len(dense):
        fit_dense_laws(dense, fit, bootstrap, seed)
    else:
        found.errors.update({name: "no dense runs: the sparsity law fits the mixture-of-experts runs"
                             for name in ("chinchilla", "auto", "power")})
    runs = all_runs if all_runs is not None else table
    if "lr" in runs.columns and runs["lr"].nunique() > 1:
        found.tables["lr_sensitivity"] = lr_sensitivity(runs)
        if hparam_columns(runs):
            try:
                found.tables["importance"] = importance_by_scale(runs)
            except AnalysisError as e:
                found.errors["importance"] = str(e)
    return found


def fit_dense_laws(table: pd.DataFrame, fit, bootstrap: int, seed: int) -> None:
    """The loss laws of N and D and, for a sweep, the hyperparameter laws; `fit(name, make)` keeps
    each law or why it could not be fitted."""
    cells = best_per_cell(table)
    fit("chinchilla", lambda: ChinchillaLaw().fit(cells, bootstrap=bootstrap, seed=seed))
    fit("auto", lambda: AutoLaw().fit(cells))
    fit("power", lambda: PowerLaw("C", "loss").fit(compute_frontier(cells), bootstrap=min(bootstrap, 200), seed=seed))
    if {"lr", "batch_size"} <= set(table.columns) and has_sweep(table):
        for optimum in ("near-best", "surface"):
            fit(f"hparams_{optimum}", lambda optimum=optimum: HparamsLaw("steplaw", optimum).fit(
                table, bootstrap=min(bootstrap, 200), seed=seed))


def is_moe(table: pd.DataFrame) -> pd.Series:
    """The mixture-of-experts runs of a table (a dense record writes no sparsity)."""
    s = sparsity(table)
    return pd.Series(False, index=table.index) if s is None else s > 0


def is_sparse(table: pd.DataFrame) -> bool:
    return bool(is_moe(table).any())


def compute_frontier(cells: pd.DataFrame) -> pd.DataFrame:
    """The lowest loss at each compute budget, with the records' FLOP convention."""
    frontier = cells.groupby("C", as_index=False)["loss"].min()
    frontier.attrs = dict(cells.attrs)  # the records' FLOP convention goes with their C
    return frontier
