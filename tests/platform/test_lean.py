"""Lightning's per-step host work trimmed (`platform/lean.py`) without changing what a run does:
idle hooks are skipped, defined ones still run, and the loggers receive the training loss
exactly as `self.log` sent it, in a diverging run and in a resumed one (a branch) too."""
from __future__ import annotations

import lightning as L
import pytest
import torch

from scalelab.platform.branches import FOLDER
from scalelab.platform.divergence import DivergenceCheck
from scalelab.platform.interrupt import StopOnCtrlC
from scalelab.platform.lean import STEP_HOOKS, QuietProfiler, skip_idle_step_hooks
from scalelab.platform.module import LanguageModelTask
from scalelab.platform.train import train

LATE_DIVERGENCE = ["optim.lr=3", "schedule.warmup=40", "optim.grad_clip=0", "train.log_every=4"]
BRANCHED = ["schedule=wsd", "schedule.warmup=5", "schedule.branches=[0.5]", "train.log_every=3"]


def test_only_the_hooks_a_callback_defines_are_called_at_each_step():
    callback, plain = StopOnCtrlC(), L.Callback()
    skip_idle_step_hooks([callback, plain])
    assert callable(callback.on_train_batch_end) and callback.on_train_start is not None
    assert all(getattr(plain, name) is None for name in STEP_HOOKS)
    assert all(getattr(callback, name) is None for name in STEP_HOOKS if name != "on_train_batch_end")
    assert callable(L.Callback().on_train_batch_end)  # the class is untouched


def test_the_quiet_profiler_gives_one_reusable_context():
    profiler = QuietProfiler()
    with profiler.profile("a"), profiler.profile("b"):
        pass
    assert profiler.profile("a") is profiler.profile("b")


@pytest.mark.parametrize("dtype, limit", [(torch.float32, 1.0000001), (torch.bfloat16, 1.005)])
def test_the_host_judges_a_loss_as_the_device_does(dtype, limit):
    # a tensor compared with the limit rounds the limit to its dtype: a loss just above the limit
    # but equal to it rounded is no divergence, on the device or on the host
    rounded = torch.tensor(limit, dtype=dtype).item()
    assert rounded > limit
    for loss in (1.0, rounded, 2.0, float("nan"), float("inf")):
        verdicts = []
        for fused in (True, False):  # judged on the device, then on the host
            optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.ones(1))], fused=fused)
            check = DivergenceCheck(optimizer, limit, torch.device("cpu"), loss_scaling=False)
            assert check.on_device == fused
            check.observe(torch.tensor(loss, dtype=dtype), step=3)
            verdicts.append(check.diverged_at())
        assert verdicts[0] == verdicts[1] == (None if loss <= rounded else 3), loss


def with_self_log(monkeypatch) -> None:
    """The module as it was: the training loss through `self.log`, at the step that measured it."""
    step = LanguageModelTask.training_step

    def training_step(self, batch, batch_idx):
        before = self._epoch_loss
        out = step(self, batch, batch_idx)
        if self._epoch_loss is not before:
            self.log("train_loss", self.train_loss, on_step=True)
        return out

    monkeypatch.setattr(LanguageModelTask, "training_step", training_step)
    monkeypatch.setattr(LanguageModelTask, "on_train_batch_end", L.LightningModule.on_train_batch_end)


def csv_logs(run_dir) -> list[str]:
    return [p.read_text() for p in sorted(run_dir.rglob("csv/metrics.csv"))]


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [LATE_DIVERGENCE, BRANCHED], ids=["diverging", "branched"])
def test_the_csv_logger_receives_what_self_log_sent(make_cfg, tmp_path, monkeypatch, overrides):
    cfg = make_cfg(*overrides, "logger=csv")
    train(cfg, run_dir=tmp_path / "lean")
    with monkeypatch.context() as m:
        with_self_log(m)
        train(cfg, run_dir=tmp_path / "self_log")
    lean, self_log = csv_logs(tmp_path / "lean"), csv_logs(tmp_path / "self_log")
    assert lean == self_log and "train_loss" in lean[0]
    if overrides is BRANCHED:
        assert len(lean) == 2 and (tmp_path / "lean" / FOLDER).is_dir()
