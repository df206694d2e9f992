"""The processes of a data-parallel run that a job launcher started: who is who.

Lightning starts the processes of a data-parallel run itself (rerunning the command with
LOCAL_RANK set), unless its cluster environment says that they were started outside it. Under
Hydra's submitit launcher, the tasks of a job are those processes, one per device:
`hydra.launcher.tasks_per_node` = `trainer.devices`, `hydra.launcher.nodes` = `trainer.num_nodes`.

- On Slurm (`hydra/launcher=submitit_slurm`), srun starts the tasks and sets SLURM_NTASKS,
  SLURM_PROCID, SLURM_LOCALID, SLURM_NODEID, SLURM_NODELIST: Lightning detects that itself (its
  SLURMEnvironment), checks the task counts against `trainer.devices` and `trainer.num_nodes`
  when training starts, and takes the first node as the main address. Nothing here is needed.
- Submitit's local executor (`hydra/launcher=submitit_local`) starts the tasks on this machine
  with its own variables only (SUBMITIT_LOCAL_*). Lightning finds none it knows, takes every task
  for a lone process and starts `trainer.devices` - 1 more from each, by rerunning submitit's
  command line, which fails. `SubmititLocalEnvironment` tells Lightning the tasks' ranks instead.
  The tasks count as `trainer.num_nodes` nodes of `trainer.devices` processes each, so that a
  multi-node configuration can be run on one machine (a run's numbers depend only on the
  total number of processes).
"""
from __future__ import annotations

import os
import random
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import ClusterEnvironment
from lightning.pytorch.utilities import rank_zero_only

# What submitit's local executor sets in each task (submitit.local.local.LocalJobEnvironment).
EXECUTOR, JOB_ID = "SUBMITIT_EXECUTOR", "SUBMITIT_LOCAL_JOB_ID"
TASKS, RANK = "SUBMITIT_LOCAL_NTASKS", "SUBMITIT_LOCAL_GLOBALID"


class SubmititLocalEnvironment(ClusterEnvironment):
    """The tasks of a job of submitit's local executor as Lightning's processes."""

    def __init__(self, num_nodes: int = 1) -> None:
        super().__init__()
        self.tasks = int(os.environ[TASKS])
        self.rank = int(os.environ[RANK])
        self.num_nodes = num_nodes
        # every task of the job draws the same port from the job id, as submitit's own helper does
        self.port = random.Random(os.environ[JOB_ID]).randint(20000, 60000)

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return "127.0.0.1"  # the local executor runs every task on this machine

    @property
    def main_port(self) -> int:
        return self.port

    @staticmethod
    def detect() -> bool:
        return os.environ.get(EXECUTOR) == "local" and TASKS in os.environ

    def world_size(self) -> int:
        return self.tasks

    def set_world_size(self, size: int) -> None:
        pass  # the job's task count; validate_settings checks that it is the trainer's

    def global_rank(self) -> int:
        return self.rank

    def set_global_rank(self, rank: int) -> None:
        pass  # the task's own rank

    def local_rank(self) -> int:
        return self.rank % self._per_node()

    def node_rank(self) -> int:
        return self.rank // self._per_node()

    def _per_node(self) -> int:
        return max(1, self.tasks // self.num_nodes)

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        """Lightning calls this when training starts; `cluster_plugins` before, for a clear error."""
        if self.tasks != num_devices * num_nodes:
            raise ValueError(f"hydra.launcher.tasks_per_node={self.tasks} must be trainer.devices x trainer.num_nodes "
                             f"= {num_devices * num_nodes}: submitit's local executor runs one task per process")


def cluster_plugins(devices: Any, num_nodes: int) -> list[ClusterEnvironment]:
    """The cluster environment for `L.Trainer(plugins=...)`: submitit's tasks under its local
    executor, checked against the run's processes; none elsewhere (Lightning's own choice)."""
    if not SubmititLocalEnvironment.detect():
        return []
    environment = SubmititLocalEnvironment(num_nodes)
    if isinstance(devices, int) and devices >= 1:  # others ("auto", a list) Lightning resolves, then checks
        environment.validate_settings(devices, num_nodes)
    return [environment]


def check_launch(trainer: L.Trainer) -> None:
    """Lightning starts the processes of this machine only; a run on several nodes whose other
    processes no launcher starts would wait for them forever: refused instead."""
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if trainer.num_nodes > 1 and not (environment and environment.creates_processes_externally):
        raise ValueError(f"a run on {trainer.num_nodes} nodes needs a launcher that starts every node's processes: "
                         f"hydra/launcher=submitit_slurm with hydra.launcher.nodes={trainer.num_nodes} and "
                         "hydra.launcher.tasks_per_node=trainer.devices")


# Lightning sets `rank_zero_only.rank` when it is imported, from RANK, LOCAL_RANK or SLURM_PROCID,
# and corrects it once training starts. What a run does before that on rank 0 alone (open its
# W&B run, remember its config) reads it, so a task of the local executor takes submitit's rank.
if SubmititLocalEnvironment.detect():
    rank_zero_only.rank = int(os.environ[RANK])
