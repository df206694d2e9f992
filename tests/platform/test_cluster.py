"""Data-parallel runs whose processes a job launcher starts: Hydra's submitit launcher, one task
per process. Its local executor runs the tasks on this machine, on CPU; on Slurm, srun starts
them and Lightning reads srun's variables itself (checked here without Slurm, by those variables)."""
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only

from scalelab.platform.cluster import SubmititLocalEnvironment, cluster_plugins
from scalelab.platform.errors import ConfigError
from scalelab.platform.train import build_trainer, train
from scalelab.record import read

from tests.platform import fake_slurm

# A submitit job of two tasks: the launcher's tasks are the run's processes.
TWO_TASKS = ["hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2", "trainer.accelerator=cpu",
             "trainer.strategy=ddp"]


@pytest.fixture
def keep_rank(monkeypatch):
    """Building a DDP trainer sets Lightning's process-wide rank; the other tests need theirs back."""
    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)


def submitit_task(monkeypatch, tasks: int, rank: int, job_id: str = "4242") -> None:
    """The variables submitit's local executor gives each task of a job."""
    for name, value in [("SUBMITIT_EXECUTOR", "local"), ("SUBMITIT_LOCAL_NTASKS", tasks),
                        ("SUBMITIT_LOCAL_GLOBALID", rank), ("SUBMITIT_LOCAL_LOCALID", rank),
                        ("SUBMITIT_LOCAL_JOB_ID", job_id), ("SUBMITIT_LOCAL_NODEID", 0),
                        ("SUBMITIT_LOCAL_JOB_NUM_NODES", 1)]:
        monkeypatch.setenv(name, str(value))


def trainer_for(make_cfg, *overrides: str):
    """`build_trainer` of the run config (it reads nothing of the plan but its step count)."""
    cfg = make_cfg("trainer.accelerator=cpu", *overrides)
    return build_trainer(cfg, SimpleNamespace(total_steps=10), Path("unused"), None, [])


# --- which processes Lightning sees, without starting any -------------------------------------

def test_outside_a_job_lightning_starts_the_processes_itself(make_cfg, no_launcher, keep_rank):
    assert cluster_plugins(2, 1) == []
    trainer = trainer_for(make_cfg, "trainer.devices=2", "trainer.strategy=ddp")
    environment = trainer.strategy.cluster_environment
    assert type(environment) is LightningEnvironment and not environment.creates_processes_externally


@pytest.mark.parametrize("devices,nodes,rank,node_rank,local_rank", [
    (2, 1, 0, 0, 0), (2, 1, 1, 0, 1),  # one node of two devices
    (1, 2, 0, 0, 0), (1, 2, 1, 1, 0),  # two nodes of one device each, on this machine
])
def test_the_tasks_of_a_local_submitit_job_are_the_processes(make_cfg, monkeypatch, no_launcher, keep_rank,
                                                             devices, nodes, rank, node_rank, local_rank):
    submitit_task(monkeypatch, tasks=2, rank=rank)
    trainer = trainer_for(make_cfg, f"trainer.devices={devices}", f"trainer.num_nodes={nodes}",
                          "trainer.strategy=ddp")
    environment = trainer.strategy.cluster_environment
    assert isinstance(environment, SubmititLocalEnvironment) and environment.creates_processes_externally
    assert (trainer.num_nodes, trainer.num_devices) == (nodes, devices)
    assert (trainer.global_rank, trainer.world_size) == (rank, 2)
    assert (trainer.node_rank, trainer.local_rank) == (node_rank, local_rank)
    assert trainer.is_global_zero == (rank == 0)
    # every task of a job meets at the same address; another job (another id) at another port
    submitit_task(monkeypatch, tasks=2, rank=1 - rank)
    other_task = SubmititLocalEnvironment(nodes)
    assert (other_task.main_address, other_task.main_port) == (environment.main_address, environment.main_port)
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "4243")
    assert SubmititLocalEnvironment(nodes).main_port != environment.main_port
    assert 20000 <= environment.main_port <= 60000


def test_slurm_tasks_are_lightning_s_own(make_cfg, monkeypatch, no_launcher, keep_rank):
    # what srun sets in the 4th task of `hydra.launcher.nodes=2 hydra.launcher.tasks_per_node=2`
    for name, value in [("SUBMITIT_EXECUTOR", "slurm"), ("SLURM_JOB_ID", "81234"), ("SLURM_JOB_NAME", "train"),
                        ("SLURM_NTASKS", "4"), ("SLURM_NTASKS_PER_NODE", "2"), ("SLURM_NNODES", "2"),
                        ("SLURM_NODELIST", "gpu[07-08]"), ("SLURM_PROCID", "3"), ("SLURM_LOCALID", "1"),
                        ("SLURM_NODEID", "1")]:
        monkeypatch.setenv(name, value)
    assert cluster_plugins(2, 2) == []  # Lightning detects srun's variables itself
    trainer = trainer_for(make_cfg, "trainer.devices=2", "trainer.num_nodes=2")
    environment = trainer.strategy.cluster_environment
    assert type(environment) is SLURMEnvironment and environment.creates_processes_externally
    assert (trainer.global_rank, trainer.world_size, trainer.node_rank, trainer.local_rank) == (3, 4, 1, 1)
    for name in ("MASTER_ADDR", "MASTER_PORT"):  # Lightning sets them when asked: taken back after the test
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    assert (environment.main_address, environment.main_port) == ("gpu07", 16234)  # every task: the job's first
                                                                                   # node, a port from the job id
    environment.validate_settings(num_devices=2, num_nodes=2)
    with pytest.raises(ValueError, match="You set `num_nodes=1` in Lightning, but the number of nodes"):
        environment.validate_settings(num_devices=2, num_nodes=1)  # Lightning's check when training starts


# --- bad input: one line naming the setting, and a failed record --------------------------------

@pytest.mark.parametrize("overrides,message", [
    (["trainer.num_nodes=0"], "trainer.num_nodes=0 must be >= 1"),
    (["trainer.num_nodes=3"], r"train.batch_size=8 must be divisible by trainer.devices=1 x trainer.num_nodes=3 = 3 "
                              r"\(each device takes an equal share of the batch\)"),
    (["trainer.devices=2", "trainer.num_nodes=3"],
     "train.batch_size=8 must be divisible by trainer.devices=2 x trainer.num_nodes=3 = 6"),
    # no launcher starts the other node's process: it would wait for it forever
    (["trainer.num_nodes=2"], "trainer.accelerator=cpu trainer.devices=1 trainer.num_nodes=2 trainer.strategy=auto: "
                              "a run on 2 nodes needs a launcher that starts every node's processes: "
                              "hydra/launcher=submitit_slurm with hydra.launcher.nodes=2 and "
                              "hydra.launcher.tasks_per_node=trainer.devices"),
])
def test_bad_node_counts_are_refused_before_training(make_cfg, no_launcher, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(make_cfg(*overrides), run_dir=tmp_path)
    r = read(tmp_path)
    assert r["status"] == "failed" and r["error"].startswith(message.split("=")[0])
    assert r["metrics"]["initial_loss"] is None  # nothing trained


def test_cli_num_nodes_zero_is_one_line(tmp_path, run_cli, no_launcher):
    out = run_cli("trainer.num_nodes=0", "logger=none", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == "scalelab: error: trainer.num_nodes=0 must be >= 1"
    assert read(tmp_path)["status"] == "failed"


def test_a_job_whose_tasks_are_not_the_processes_is_refused(make_cfg, monkeypatch, no_launcher, keep_rank, tmp_path):
    # two tasks for a one-device run: each would train alone, both into the same folder
    submitit_task(monkeypatch, tasks=2, rank=0)
    message = ("trainer.accelerator=cpu trainer.devices=1 trainer.strategy=auto: hydra.launcher.tasks_per_node=2 "
               "must be trainer.devices x trainer.num_nodes = 1: submitit's local executor runs one task per process")
    with pytest.raises(ConfigError) as info:
        train(make_cfg(), run_dir=tmp_path)
    assert str(info.value) == message
    assert read(tmp_path)["error"] == message


# --- processes: submitit's local executor runs the tasks ------------------------------------------

def scalelab_train(cwd: Path, *args: str, timeout: float = 150, **env: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "scalelab", "train", *args], cwd=cwd, env={**job_env(), **env},
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return out


def job_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUBMITIT_", "SLURM_"))}
    env.pop("SCALELAB_OPTUNA_STORAGE", None)
    return {**env, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "0"}


def job_tasks(submitit_folder: Path) -> list[dict[int, SimpleNamespace]]:
    """Each job's tasks by rank: its Hydra output folder and return value, from the results
    submitit pickled, and what it logged."""
    jobs = []
    for job in sorted(submitit_folder.glob("[0-9]*")):
        tasks = {}
        for result in job.glob("*_result.pkl"):
            rank = int(result.name.split("_")[-2])
            outcome, job_return = pickle.loads(result.read_bytes())
            assert outcome == "success", job_return
            log = "".join(p.read_text() for p in job.glob(f"*_{rank}_log.*"))
            tasks[rank] = SimpleNamespace(output_dir=job_return.hydra_cfg.hydra.runtime.output_dir,
                                          returned=job_return.return_value, log=log)
        jobs.append(tasks)
    return jobs


def check_one_world_of_two(tasks: dict[int, SimpleNamespace], run_dir: Path, final_loss: float) -> None:
    """Both tasks of a job trained the run in `run_dir` as ranks 0 and 1 of two processes."""
    assert sorted(tasks) == [0, 1]
    for rank, task in tasks.items():
        assert task.output_dir == str(run_dir)  # every task in the run's one folder
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in task.log  # Lightning: one world of two
        assert task.returned == pytest.approx(final_loss, rel=1e-6)


# the run of every two-task job here: long enough to be killed after its first checkpoint
JOB_RUN = ["model.width=16", "model.depth=1", "model.heads=2", "model.context=32", "train.batch_size=8",
           "train.eval_tokens=2048", "train.tokens=4e4", "train.eval_every=40"]


@pytest.fixture(scope="module")
def two_task_job(tmp_path_factory):
    """`scalelab train -m hydra/launcher=submitit_local hydra.launcher.tasks_per_node=2
    trainer.devices=2 ...`, W&B offline: its sweep folder."""
    sweep = tmp_path_factory.mktemp("two_task_job") / "sweep"
    scalelab_train(sweep.parent, "-m", *TWO_TASKS, "trainer.devices=2", *JOB_RUN, "logger=wandb",
                   f"hydra.sweep.dir={sweep}", WANDB_MODE="offline", WANDB_SILENT="true")
    return sweep


@pytest.mark.slow
def test_a_two_task_job_is_one_data_parallel_run_and_one_record(make_cfg, no_launcher, tmp_path, two_task_job):
    """The two tasks are the two processes of one run (each takes half of every batch, so the
    losses match a one-process run) in one folder, with one record and one W&B run."""
    one = train(make_cfg(*JOB_RUN, "logger=none", tiny=False), run_dir=tmp_path / "one")
    sweep = two_task_job
    assert sorted(p.name for p in sweep.iterdir()) == [".submitit", "0", "multirun.yaml"]
    assert list(sweep.rglob("run.json")) == [sweep / "0" / "run.json"]
    r = read(sweep / "0")
    assert r["status"] == "completed" and r["metrics"]["steps"] == read(tmp_path / "one")["metrics"]["steps"]
    # two processes add the gradients in another order: a drift of about 0.15% after these 156 steps
    assert r["metrics"]["final_val_loss"] == pytest.approx(one, rel=5e-3)
    assert r["run_id"] == (sweep / "0" / ".run_id").read_text()
    assert not (sweep / "0" / "checkpoints").exists()
    (wandb_run,) = (sweep / "0" / "wandb").glob("offline-run-*")  # rank 0's alone
    assert wandb_run.name.endswith(r["run_id"])

    (tasks,) = job_tasks(sweep / ".submitit")
    check_one_world_of_two(tasks, sweep / "0", r["metrics"]["final_val_loss"])


@pytest.mark.slow
def test_a_two_node_slurm_job_preempted_is_requeued_and_resumes_its_run(no_launcher, tmp_path, two_task_job):
    """`hydra/launcher=submitit_slurm hydra.launcher.nodes=2` on a Slurm emulated here
    (`fake_slurm`): submitit submits its real sbatch script, srun starts a task per node, and
    Lightning's own SLURMEnvironment makes them one world of two. Slurm then signals the job as
    preempted (USR2, submitit's `--signal=USR2@120`): submitit's handler in task 0 asks for a
    requeue, Slurm kills the job and runs it again, and the run resumes from its last checkpoint
    to the loss of the uninterrupted 2-process job."""
    slurm = fake_slurm.install(tmp_path / "slurm", first_job_id=3000 + os.getpid() % 4000)  # ports from job ids
    state, sweep = tmp_path / "slurm" / "state", tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "scalelab", "train", "-m", "hydra/launcher=submitit_slurm",
                             "hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=1", "trainer.accelerator=cpu",
                             "trainer.strategy=ddp", "trainer.devices=1", "trainer.num_nodes=2", *JOB_RUN,
                             "logger=none", f"hydra.sweep.dir={sweep}"],
                            cwd=tmp_path, env={**job_env(), **slurm}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    checkpoint = sweep / "0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    [tasks] = state.glob("*.tasks")
    run_id = (sweep / "0" / ".run_id").read_text()
    for pid in tasks.read_text().split():
        os.kill(int(pid), signal.SIGUSR2)
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 0, err[-5000:]

    script = Path((state / f"{tasks.stem}.job").read_text()).read_text()
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=1" in script and "\nsrun " in script
    assert (state / f"{tasks.stem}.requeued").read_text() == "requeued\n"  # ran twice
    r = read(sweep / "0")
    assert r["status"] == "completed" and r["run_id"] == run_id  # the same run, resumed
    assert "resuming" in (sweep / "0" / "train.log").read_text()
    assert r["metrics"]["final_val_loss"] == pytest.approx(read(two_task_job / "0")["metrics"]["final_val_loss"],
                                                           rel=1e-5)
    assert list(sweep.rglob("run.json")) == [sweep / "0" / "run.json"]
    (job,) = job_tasks(sweep / ".submitit")
    check_one_world_of_two(job, sweep / "0", r["metrics"]["final_val_loss"])


@pytest.mark.slow
def test_a_task_knows_its_rank_before_training(no_launcher):
    """Before `fit`, rank 0 alone opens the W&B run and remembers the config: each task of a local
    job has its rank from the moment scalelab's training module is imported."""
    code = ("import scalelab.platform.train; from lightning.pytorch.utilities import rank_zero_only; "
            "print(rank_zero_only.rank)")
    env = {**job_env(), "SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_NTASKS": "2", "SUBMITIT_LOCAL_GLOBALID": "1",
           "SUBMITIT_LOCAL_JOB_ID": "7"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "1", out.stderr[-2000:]  # Lightning alone would say 0
