import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException

from scalelab.platform.errors import ConfigError
from scalelab.platform.model import GPT, GPTShape, count_parameters
from scalelab.platform.module import LanguageModelTask
from scalelab.platform.train import train
from scalelab.record import flops_per_token, read

RECORD_KEYS = {"schema_version", "run_id", "study", "ladder", "ladder_id", "trial", "branch", "status", "error", "config", "overrides", "scale",
               "hparams", "metrics", "curve", "environment", "started_at", "ended_at"}


def test_run_writes_a_complete_record(make_cfg, tmp_path):
    final = train(make_cfg("train.tokens=3e4"), run_dir=tmp_path)
    r = read(tmp_path)
    assert set(r) == RECORD_KEYS
    assert r["status"] == "completed" and r["error"] is None and r["schema_version"] == 1
    assert r["study"] is None and r["trial"] is None
    assert r["config"]["model"]["width"] == 16

    shape = GPTShape(16, 1, 2, 32, 256)
    n, n_total = count_parameters(GPT(shape))
    steps = int(3e4 // (8 * 32))
    s = r["scale"]
    assert (s["N"], s["N_total"], s["D"]) == (n, n_total, steps * 8 * 32)
    assert s["flops_per_token"] == flops_per_token(n, shape.depth, shape.context, shape.width) and s["C"] == s["flops_per_token"] * s["D"]

    m = r["metrics"]
    assert set(m) == {"final_val_loss", "best_val_loss", "initial_loss", "steps", "tokens_seen",
                      "tokens_per_second", "mfu", "compile_seconds", "wall_seconds"}
    assert m["final_val_loss"] == final and m["steps"] == steps and m["tokens_seen"] == s["D"]
    assert m["initial_loss"] == pytest.approx(np.log(256), rel=0.05)  # an untrained byte model is uniform
    assert m["final_val_loss"] < m["initial_loss"] - 1.0
    curve = r["curve"]
    assert m["best_val_loss"] == min(p["val_loss"] for p in curve)
    # every curve point is measured on the same part of the held-out set, as train.eval_share allows
    windows = int(3 * 0.04 * s["D"] / 5) // 32  # 4% of the training FLOPs over 5 evaluations in between
    assert {p["eval_tokens"] for p in curve} == {windows * 32}
    assert m["tokens_per_second"] > 0 and m["wall_seconds"] > 0
    assert m["mfu"] is None  # a CPU has no peak in the table

    assert [p["step"] for p in r["curve"]] == [0, 20, 40, 60, 80, 100, steps]
    assert r["hparams"] == {"lr": 3e-3, "batch_size": 8, "weight_decay": 0.1, "warmup": 0.02, "schedule": "cosine"}
    env = r["environment"]
    assert env["seed"] == 0 and env["device"] == "cpu" and env["packages"]["torch"]
    assert r["started_at"] <= r["ended_at"]
    assert not (tmp_path / "checkpoints").exists()  # only kept to resume, or when asked


def test_ten_evaluations_by_default_and_a_curve_on_the_whole_set_ends_at_the_final_loss(make_cfg, tmp_path):
    final = train(make_cfg("train.eval_every=null", "train.eval_share=1"), run_dir=tmp_path)
    r = read(tmp_path)
    steps = r["metrics"]["steps"]  # 78: an evaluation every ceil(78 / 10) = 8 steps, and at the end
    assert [p["step"] for p in r["curve"]] == [0, *range(8, steps, 8), steps]
    # eval_share=1 pays for the whole held-out set every time: the curve's ends are the run's losses
    assert {p["eval_tokens"] for p in r["curve"]} == {2048}
    assert r["curve"][0]["val_loss"] == pytest.approx(r["metrics"]["initial_loss"], rel=1e-6)
    assert r["curve"][-1]["val_loss"] == pytest.approx(final, rel=1e-6)


def test_mup_at_its_base_width_trains_exactly_as_sp(make_cfg, tmp_path):
    sp = train(make_cfg(), run_dir=tmp_path / "sp")
    mup = train(make_cfg("model.parametrization=mup", "model.base_width=16"), run_dir=tmp_path / "mup")
    assert mup == sp
    assert read(tmp_path / "mup")["config"]["model"] | {"width": 16} == {
        **read(tmp_path / "sp")["config"]["model"], "parametrization": "mup", "base_width": 16}


def test_mfu_is_the_model_flops_per_second_over_the_peak(make_cfg, tmp_path):
    train(make_cfg("trainer.peak_flops=1e9"), run_dir=tmp_path)  # a peak given for this CPU
    r = read(tmp_path)
    achieved = r["metrics"]["tokens_per_second"] * r["scale"]["flops_per_token"]
    assert r["metrics"]["mfu"] == pytest.approx(achieved / 1e9)


def test_same_seed_and_config_give_the_same_losses(make_cfg, tmp_path):
    curves = []
    for i, seed in enumerate((0, 0, 1)):
        train(make_cfg(f"train.seed={seed}"), run_dir=tmp_path / str(i))
        curves.append([p["val_loss"] for p in read(tmp_path / str(i))["curve"]])
    assert curves[0] == curves[1]
    assert curves[0] != curves[2]


@pytest.mark.parametrize("schedule", ["wsd", "constant"])
def test_other_schedules_train(make_cfg, tmp_path, schedule):
    train(make_cfg(f"schedule={schedule}"), run_dir=tmp_path)
    r = read(tmp_path)
    assert r["status"] == "completed" and r["hparams"]["schedule"] == schedule
    assert r["metrics"]["final_val_loss"] < r["metrics"]["initial_loss"]


def test_an_unstable_learning_rate_ends_as_diverged(make_cfg, tmp_path):
    train(make_cfg("optim.lr=30", "optim.grad_clip=0", "schedule.warmup=0"), run_dir=tmp_path)
    r = read(tmp_path)
    assert r["status"] == "diverged" and r["error"] is None
    assert r["metrics"]["steps"] < int(2e4 // 256)  # stopped early


def test_tokens_per_param_sets_the_budget(make_cfg, tmp_path):
    train(make_cfg("train.tokens_per_param=2"), run_dir=tmp_path)
    s = read(tmp_path)["scale"]
    assert s["D"] == int(2 * s["N"] // 256) * 256


def test_pre_tokenized_uint16_files(make_cfg, tmp_path):
    rng = np.random.default_rng(0)
    pattern = np.tile(rng.integers(0, 1000, 50, dtype=np.uint16), 400)  # a repeating, learnable stream
    pattern.tofile(tmp_path / "train.bin")
    pattern[:5000].tofile(tmp_path / "val.bin")
    cfg = make_cfg("data=tokens", f"data.train_path={tmp_path}/train.bin", f"data.val_path={tmp_path}/val.bin",
                   "data.vocab_size=1000", "optim.lr=1e-2")
    train(cfg, run_dir=tmp_path / "run")
    r = read(tmp_path / "run")
    assert r["status"] == "completed" and r["scale"]["N_total"] - r["scale"]["N"] == 1000 * 16 + 32 * 16
    with pytest.raises(ConfigError, match="data.vocab_size=500 is too small"):
        train(make_cfg("data=tokens", f"data.train_path={tmp_path}/train.bin",
                       f"data.val_path={tmp_path}/val.bin", "data.vocab_size=500"), run_dir=tmp_path / "bad")


@pytest.mark.parametrize("overrides,message", [
    (["data.paths=[/nonexistent/*.txt]"], "data.paths: no file matches '/nonexistent/"),
    (["model.context=100000"], "model.context=100000 needs more than"),
    (["train.batch_size=1000000", "train.tokens=1e9"], "train.batch_size=1000000 x model.context=32 .* is larger than the training split"),
    (["train.tokens=100"], "train.tokens=100 is smaller than one step"),
    (["model.width=30", "model.heads=4"], "model.width=30 must be divisible by model.heads=4"),
    (["model.parametrization=mup"], "model.parametrization=mup needs model.base_width"),
    (["model.parametrization=mup", "model.base_width=0"], "model.base_width=0 must be >= 1"),
    (["optim.lr=-1"], "optim.lr=-1.0 must be > 0"),
    (["optim.lr=nan"], "optim.lr=nan must be > 0"),
    (["optim.lr=inf"], "optim.lr=inf must be > 0"),
    (["optim.lr=-1", "optim.eps=0"], "optim.lr=-1.0 must be > 0; optim.eps=0.0 must be > 0"),
    (["optim.weight_decay=-1"], "optim.weight_decay=-1.0 must be >= 0"),
    (["optim.grad_clip=-1"], r"optim.grad_clip=-1.0 must be >= 0 \(0 turns clipping off\)"),
    (["schedule.warmup=-1"], r"schedule.warmup=-1.0 must be >= 0"),
    (["schedule.min_lr_ratio=2"], r"schedule.min_lr_ratio=2.0 must be in \[0, 1\]"),
    (["train.tokens=1e30"], r"train.tokens=1e\+30 must be in \(0, 1e\+15\] \(more is beyond any plausible run\)"),
    (["train.tokens_per_param=1e20"], r"train.tokens_per_param=1e\+20 .* must be at most 1e\+15 tokens"),
    (["train.divergence_factor=-1"], r"train.divergence_factor=-1.0 must be > 1"),
    (["train.seed=-1"], r"train.seed=-1 must be in \[0, 4294967295\]"),
    (["trainer.strategy=bogus"], "trainer.accelerator=cpu trainer.devices=1 trainer.strategy=bogus: You selected an "
                                 "invalid strategy name"),
    (["trainer.devices=0"], r"trainer.accelerator=cpu trainer.devices=0 trainer.strategy=auto: `Trainer\(devices=0\)`"),
    (["data=tokens"], "data.train_path is required with data=tokens"),
    (["schedule.warmup=2.5"], r"schedule.warmup=2.5 must be a whole number of steps"),
    (["optim.fused=true", "train.precision=16-mixed"], "optim.fused=true cannot train with train.precision=16-mixed"),
    (["schedule=wsd", "schedule.warmup=2", "schedule.branches=[0.5]", "trainer.devices=2", "trainer.strategy=ddp"],
     "schedule.branches trains its branches in one process after the run; a data-parallel run"),
    (["schedule.warmup=1000"], r"schedule.warmup=1000 steps is longer than the run \(78 steps\)"),
    (["schedule=wsd", "schedule.decay_fraction=1.5"], r"schedule.decay_fraction=1.5 must be in \[0, 1\]"),
    (["data=tokens", "data.train_path=/nope.bin", "data.val_path=/nope.bin"], "data.train_path: no such file"),
    pytest.param(["trainer=gpu"], "trainer.accelerator=gpu but no CUDA device is visible",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_bad_input_is_refused_with_a_message_naming_the_setting(make_cfg, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(make_cfg(*overrides), run_dir=tmp_path)
    r = read(tmp_path)  # a record for every ending, non-finite values as null
    assert r["status"] == "failed" and r["error"].startswith(message.split("=")[0])
    if "nan" in message or "inf" in message:
        assert r["config"]["optim"]["lr"] is None


def test_an_empty_corpus_is_refused(make_cfg, tmp_path):
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("")
    with pytest.raises(ConfigError, match="data.paths: the corpus is empty"):
        train(make_cfg(f"data.paths=[{tmp_path}/*.txt]"), run_dir=tmp_path / "run")


def test_local_text_files_train(make_cfg, tmp_path, text_corpus):
    train(make_cfg(f"data.paths=[{text_corpus}/*.txt]"), run_dir=tmp_path)
    r = read(tmp_path)
    assert r["status"] == "completed"
    assert r["metrics"]["final_val_loss"] < 0.7 * r["metrics"]["initial_loss"]  # a repetitive text is easy


@pytest.mark.parametrize("override", ["schedule.name=linear", "train.precision=fp8", "logger.kind=x",
                                      "logger.mode=live", "data.kind=text"])
def test_a_bad_closed_choice_is_refused_at_composition(make_cfg, override):
    key = override.split("=")[0]
    with pytest.raises(ConfigCompositionException) as info:
        make_cfg(override)
    assert override in str(info.value) and "expected one of" in str(info.value.__cause__)
    assert key in str(info.value.__cause__)


@pytest.mark.parametrize("override,allowed", [
    ("train.precision=fp8", "expected one of [auto, 32-true, 32, 64-true, 16-mixed, bf16-mixed, bf16-true, 16-true]"),
    ("schedule=linear", "Available options in 'schedule': constant, cosine, wsd"),
    ("model=gpt_zz", "Available options in 'model': gpt_100m, gpt_10m, gpt_25m, gpt_50m, gpt_l, gpt_m, gpt_s, gpt_xs"),
    ("optim.lr=abc", "Value 'abc' of type 'str' could not be converted to Float"),
])
def test_cli_bad_choice_is_one_line_before_any_run_starts(tmp_path, run_cli, override, allowed):
    out = run_cli(override, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("scalelab: error: ") and override.split("=")[0] in line and allowed in line
    assert not list(tmp_path.iterdir())  # no run folder, no W&B files: nothing started


@pytest.mark.parametrize("overrides,line", [
    (["model.width=30", "model.heads=4"], "model.width=30 must be divisible by model.heads=4"),
    (["optim.lr=nan"], "optim.lr=nan must be > 0"),
    (["trainer.devices=0"], "trainer.accelerator=cpu trainer.devices=0 trainer.strategy=auto: `Trainer(devices=0)` "
                            "value is not a valid input using cpu accelerator."),
])
def test_cli_bad_input_is_one_clear_line_and_a_failed_record(tmp_path, run_cli, overrides, line):
    out = run_cli(*overrides, "logger=none", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == f"scalelab: error: {line}"
    assert "Traceback" not in out.stderr
    assert read(tmp_path)["status"] == "failed"


def test_cli_unknown_key_names_it(tmp_path, run_cli):
    out = run_cli("model.colour=red", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == ("scalelab: error: Could not override 'model.colour'; Key 'colour' not in "
                                  "'ModelConfig'; To append to your config use +model.colour=red")


def test_cli_a_path_hydra_cannot_lex_says_how_to_quote_it(tmp_path, run_cli):
    out = run_cli("hydra.run.dir=runs/café", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "goes in quotes inside the override, e.g. \"hydra.run.dir='runs/café'\"" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_cli_two_modes_at_once_is_one_line(tmp_path, run_cli):
    out = run_cli("-m", "--cfg", "job", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip() == (
        "scalelab: error: Only one of --run, --multirun, --cfg, --info and --shell_completion can be specified")


def test_a_crashing_run_records_the_error_and_exits_non_zero(tmp_path, run_cli, monkeypatch):
    def crash(self, batch, batch_idx):  # a bug mid-run, inside Lightning
        raise RuntimeError("a bug")

    monkeypatch.setattr(LanguageModelTask, "training_step", crash)
    out = run_cli("model.width=16", "model.depth=1", "model.heads=2", "model.context=32", "train.tokens=2e4",
                  "train.batch_size=8", "logger=none", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert out.returncode != 0
    r = read(tmp_path)
    assert r["status"] == "failed" and "Traceback" in r["error"] and "RuntimeError: a bug" in r["error"]
    assert r["metrics"]["steps"] == 0


def test_wandb_offline_run_is_written_and_logger_none_writes_none(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    train(make_cfg("logger=wandb"), run_dir=tmp_path / "with")
    runs = list((tmp_path / "with" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    train(make_cfg("logger=none"), run_dir=tmp_path / "without")
    assert not list(tmp_path.rglob("without/**/wandb")) and not (tmp_path / "wandb").exists()


@pytest.mark.slow
def test_data_parallel_processes_share_each_batch_and_match_one_device(tmp_path, make_cfg):
    """`scalelab train` (the console script) with two CPU processes under DDP: each takes half of
    the same global batch, so the losses match a one-device run up to float noise."""
    one = train(make_cfg(), run_dir=tmp_path / "one")
    scalelab = Path(sys.executable).parent / "scalelab"
    out = subprocess.run([str(scalelab), "train", "trainer.accelerator=cpu", "trainer.devices=2",
                          "trainer.strategy=ddp", *make_cfg.tiny, f"hydra.run.dir={tmp_path / 'two'}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "WANDB_MODE": "disabled"})
    assert out.returncode == 0, out.stderr[-2000:]
    r = read(tmp_path / "two")
    assert r["status"] == "completed" and r["metrics"]["steps"] == read(tmp_path / "one")["metrics"]["steps"]
    assert r["metrics"]["final_val_loss"] == pytest.approx(one, rel=1e-3)
