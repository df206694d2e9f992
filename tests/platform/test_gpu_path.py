"""The settings of the GPU path, checked on a CPU: the divergence check without a per-step
synchronisation, precision `auto`, fused AdamW and torch.compile."""
import pytest
import torch

from scalelab.platform.data import HeldOut, TrainBatches, load_corpus
from scalelab.platform.divergence import DivergenceCheck
from scalelab.platform.train import precision, train
from scalelab.record import read

UNSTABLE = ["optim.lr=30", "optim.grad_clip=0", "schedule.warmup=0", "train.eval_every=7"]


def _outcome(run_dir) -> dict:
    r = read(run_dir)
    return {"status": r["status"], "curve": r["curve"],
            **{k: r["metrics"][k] for k in ("final_val_loss", "best_val_loss", "initial_loss", "steps", "tokens_seen")}}


def test_a_divergence_read_every_few_steps_gives_the_record_of_a_check_at_every_step(make_cfg, tmp_path):
    # fused AdamW skips updates on the device, so its check is read every log_every steps
    every_step, every_five = (_run(make_cfg, tmp_path / f"log{n}", "optim.fused=true", f"train.log_every={n}", *UNSTABLE)
                              for n in (1, 5))
    assert every_five == every_step and every_step["status"] == "diverged"
    diverging_step = every_step["steps"] - 1
    assert (diverging_step + 1) % 5 and (diverging_step + 1) % 7, "diverged at a step the check reads anyway"


def _run(make_cfg, run_dir, *overrides) -> dict:
    train(make_cfg(*overrides), run_dir=run_dir)
    return _outcome(run_dir)


def test_a_stable_run_is_the_same_whichever_step_the_check_reads(make_cfg, tmp_path):
    runs = [_run(make_cfg, tmp_path / f"log{n}", "optim.fused=true", f"train.log_every={n}") for n in (1, 10)]
    assert runs[0] == runs[1] and runs[0]["status"] == "completed"


def test_a_diverged_step_and_every_later_one_leave_the_weights_as_they_were():
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([weight], lr=0.1, fused=True)
    check = DivergenceCheck(optimizer, limit=10.0, device=torch.device("cpu"), loss_scaling=False)
    assert check.on_device and not check.must_read(step=0, read_points=[9], log_every=10)
    for step, loss in enumerate([1.0, float("nan"), 1.0, 1.0]):
        check.observe(torch.tensor(loss), step)
        before = weight.detach().clone()
        weight.grad = torch.ones(3)
        optimizer.step()
        assert torch.equal(weight, before) == (step >= 1), step
    assert check.diverged_at() == 1 and check.must_read(step=9, read_points=[], log_every=10)


def test_without_a_fused_optimizer_the_check_is_read_every_step():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))])
    check = DivergenceCheck(optimizer, limit=10.0, device=torch.device("cpu"), loss_scaling=False)
    check.observe(torch.tensor(11.0), step=3)
    assert not check.on_device and check.must_read(step=4, read_points=[], log_every=10)
    assert check.diverged_at() == 3


def test_16_bit_loss_scaling_keeps_the_check_on_the_host():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], fused=True)
    assert not DivergenceCheck(optimizer, 10.0, torch.device("cpu"), loss_scaling=True).on_device


def test_batches_are_contiguous_so_that_their_pinned_copies_go_to_the_gpu_as_they_are(make_cfg):
    # torch copies a non-contiguous tensor into a new, pageable one before it goes to a GPU
    corpus = load_corpus(make_cfg().data)
    held_out = HeldOut(corpus.val, eval_tokens=2048, curve_tokens=1024, context=32, batch_size=8)
    training = list(TrainBatches(corpus.train, batch_size=8, context=32, seed=0, epoch_ends=[3]))
    assert len(training) == 3
    for inputs, targets, *_ in [*training, *held_out.full, *held_out.curve]:
        assert inputs.is_contiguous() and targets.is_contiguous()
        assert torch.equal(inputs[:, 1:], targets[:, :-1])  # the targets: the next tokens


@pytest.mark.parametrize("overrides, expected", [
    ([], "32-true"),
    (["train.precision=bf16-mixed"], "bf16-mixed"),
    (["trainer.accelerator=auto"], "bf16-mixed" if torch.cuda.is_available() else "32-true"),
])
def test_precision_auto_is_full_precision_on_a_cpu_and_an_explicit_one_is_kept(make_cfg, overrides, expected):
    if expected == "bf16-mixed" and overrides == ["trainer.accelerator=auto"] and not torch.cuda.is_bf16_supported():
        expected = "16-mixed"
    assert precision(make_cfg(*overrides)) == expected


def test_the_record_names_the_precision_the_run_used(make_cfg, tmp_path):
    train(make_cfg(), run_dir=tmp_path)
    r = read(tmp_path)
    assert r["config"]["train"]["precision"] == "auto" and r["environment"]["precision"] == "32-true"
    assert r["metrics"]["compile_seconds"] is None


@pytest.mark.slow
def test_a_compiled_model_trains_like_the_eager_one_and_reports_its_compile_time(make_cfg, tmp_path):
    # evaluations at the start and the end only: each other evaluation shape would compile again
    eager, compiled = (_run(make_cfg, tmp_path / name, f"train.compile={name == 'compiled'}", "train.eval_every=null",
                            "train.evals=1") for name in ("eager", "compiled"))
    assert compiled["final_val_loss"] == pytest.approx(eager["final_val_loss"], rel=1e-3)
    assert compiled["steps"] == eager["steps"]
    metrics = read(tmp_path / "compiled")["metrics"]
    assert metrics["compile_seconds"] > 0 and metrics["tokens_per_second"] > 0


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@gpu
def test_on_a_gpu_the_divergence_read_every_few_steps_gives_the_record_of_a_check_at_every_step(make_cfg, tmp_path):
    runs = [_run(make_cfg, tmp_path / f"log{n}", "trainer=gpu", f"train.log_every={n}", *UNSTABLE) for n in (1, 5)]
    assert runs[0]["status"] == runs[1]["status"] == "diverged" and runs[0]["steps"] == runs[1]["steps"]
    # a GPU's backward pass is not bit-reproducible (atomic additions), so the losses match closely
    assert runs[1]["final_val_loss"] == pytest.approx(runs[0]["final_val_loss"], rel=1e-3)
    r = read(tmp_path / "log5")
    assert r["environment"]["precision"] == ("bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed")
    assert r["environment"]["device"].startswith("cuda (")


@gpu
def test_on_a_gpu_a_run_trains_in_mixed_precision_and_reports_its_mfu(make_cfg, tmp_path):
    r = _run(make_cfg, tmp_path, "trainer=gpu", "train.tokens=2e5")
    metrics = read(tmp_path)["metrics"]
    assert r["status"] == "completed" and r["final_val_loss"] < r["initial_loss"] - 1.0
    assert metrics["mfu"] is None or 0 < metrics["mfu"] < 1  # None: a GPU missing from the table of peaks
