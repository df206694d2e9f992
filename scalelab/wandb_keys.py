"""What a training run logs to W&B, by name: the contract between the runs, the dashboards built
on them (`analysis.dashboards`) and the reading back of a W&B project (`analysis.table`).

- History, at W&B step = the record's step (optimizer steps done): `tokens` and `flops` on every
  row; `val_loss` at every evaluation, step 0 included, with `eval_tokens` (the held-out tokens
  it was measured on: part of the set, so the last point differs from `final_val_loss`, measured
  on all of it); `train_loss` and `lr` every
  `train.log_every` steps. `define_metric` puts `BY_TOKENS` on `tokens` by default and keeps
  the min and last of each loss in the summary.
- Config: the resolved config by dotted path (`optim.lr`), the scale (`SCALE`) and where the run
  belongs (`PLACEMENT`).
- Summary: the record's metrics and status (`SUMMARY`).
"""
from __future__ import annotations

TRAIN_JOB, ANALYSIS_JOB = "train", "analysis"  # W&B job types; a training run's W&B group is its study
X_AXIS = "tokens"
HISTORY = ("tokens", "flops", "train_loss", "lr", "val_loss", "eval_tokens")
LOSSES = ("train_loss", "val_loss")
BY_TOKENS = (*LOSSES, "lr")
SCALE = ("N", "N_total", "D", "C", "flops_per_token")
# `study`: the Optuna study of the run's scale; `ladder`: shared by every study of one sweep, as is
# `ladder_id`, which tells two sweeps of one name apart (runs logged before it lack it);
# `searched`: the searched config paths (each value is also under its own path)
LADDER_ID = "ladder_id"
PLACEMENT = ("study", "ladder", LADDER_ID, "scale", "trial", "role", "searched")
CONFIG = (*SCALE, *PLACEMENT)
SUMMARY = ("final_val_loss", "best_val_loss", "initial_loss", "steps", "tokens_seen", "tokens_per_second",
           "wall_seconds", "status")
LR = "optim.lr"
FITS_TABLE = "fits"  # the analysis run's W&B Table of fitted parameters
FITS_COLUMNS = ("law", "form", "parameter", "value", "ci_low", "ci_high", "n_points", "quality", "chosen", "error")

# The analysis run's frontier (`analysis.frontier`), one history row per point, all on x = FRONTIER_X
# (training FLOPs): a line plot over history keys is what W&B draws on log-log axes without a custom chart.
FRONTIER_X = "frontier/C"
FRONTIER = ("frontier/loss", "frontier/low", "frontier/high")  # the fitted law L(C) and its 95% band
BEST = "frontier/best_loss"  # each scale's best run
TARGET = ("frontier/target_predicted", "frontier/target_measured")  # a scaling study's target
FRONTIER_TABLE = "frontier"  # the same points as one W&B Table
