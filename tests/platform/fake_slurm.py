"""A Slurm cluster of one machine, for tests: `sbatch`, `srun`, `sacct`, `scancel` and `scontrol`
on PATH, so that Hydra's submitit Slurm launcher submits real jobs and their tasks run here.

- `sbatch SCRIPT` reads the script's `#SBATCH` lines (nodes, ntasks-per-node, job-name), gives
  the job the next id and runs the script in the background with the variables of the
  allocation: SLURM_JOB_ID, SLURM_NTASKS, SLURM_NTASKS_PER_NODE, SLURM_JOB_NUM_NODES and
  SLURM_NODELIST (`localhost` for every node). Job arrays are refused.
- `srun [--output F] [--error F] COMMAND` starts SLURM_NTASKS copies of COMMAND, each with its
  SLURM_PROCID, SLURM_LOCALID and SLURM_NODEID, its output in F (`%j`, `%t` replaced), and
  exits with the worst exit status.
- `sacct -j ID` says RUNNING, then COMPLETED or FAILED; `scancel` and `scontrol` do nothing.

A plain module, imported by name like `wandb_file`. What it cannot show: several machines, a
queue, preemption, job arrays.
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

SBATCH = r'''
import fcntl, os, re, subprocess, sys
from pathlib import Path

state = Path(os.environ["FAKE_SLURM_STATE"])
script = Path(sys.argv[-1])
flags = dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", script.read_text(), re.M))
if "array" in flags:
    sys.exit("sbatch (emulated): job arrays are not emulated")
nodes, per_node = int(flags.get("nodes", 1)), int(flags.get("ntasks-per-node", 1))
with open(state / "next_id", "r+") as counter:  # a sweep submits its trials at once: one id each
    fcntl.flock(counter, fcntl.LOCK_EX)
    job_id = int(counter.read())
    counter.seek(0)
    counter.write(str(job_id + 1))
env = {**os.environ, "SLURM_JOB_ID": str(job_id), "SLURM_NTASKS": str(nodes * per_node),
       "SLURM_NTASKS_PER_NODE": str(per_node), "SLURM_NNODES": str(nodes), "SLURM_JOB_NUM_NODES": str(nodes),
       "SLURM_NODELIST": "localhost", "SLURM_JOB_NODELIST": "localhost", "SLURM_JOB_NAME": flags.get("job-name", "job")}
(state / f"{job_id}.job").write_text(str(script))
with open(state / f"{job_id}.out", "ab") as out:
    subprocess.Popen(["bash", "-c", 'bash "$0"; echo $? > "$1"', str(script), str(state / f"{job_id}.rc")],
                     env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
print(f"Submitted batch job {job_id}")
'''

SRUN = r'''
import os, subprocess, sys

args, files = sys.argv[1:], {}
while args and args[0].startswith("--"):
    flag = args.pop(0)
    if flag in ("--output", "--error"):
        files[flag] = args.pop(0)
    elif flag == "--cpu-bind":
        args.pop(0)
tasks, per_node = int(os.environ["SLURM_NTASKS"]), int(os.environ["SLURM_NTASKS_PER_NODE"])


def path(pattern, task):
    return pattern.replace("%j", os.environ["SLURM_JOB_ID"]).replace("%t", str(task))


procs = []
for task in range(tasks):
    env = {**os.environ, "SLURM_PROCID": str(task), "SLURM_LOCALID": str(task % per_node),
           "SLURM_NODEID": str(task // per_node), "SLURM_STEP_ID": "0"}
    out = open(path(files["--output"], task), "ab") if "--output" in files else None
    err = open(path(files["--error"], task), "ab") if "--error" in files else subprocess.STDOUT
    procs.append(subprocess.Popen(args, env=env, stdout=out, stderr=err))
sys.exit(max(p.wait() for p in procs))
'''

SACCT = r'''
import os, sys
from pathlib import Path

state = Path(os.environ["FAKE_SLURM_STATE"])
ids = [sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "-j"]
print("JobID|State|NodeList")
for job_id in ids:
    for job in sorted(state.glob(f"{job_id}*.job")):
        rc = state / f"{job.stem}.rc"
        status = "RUNNING" if not rc.exists() else "COMPLETED" if rc.read_text().strip() == "0" else "FAILED"
        print(f"{job.stem}|{status}|localhost")
'''

NOTHING = "\n"


def install(folder: Path, first_job_id: int) -> dict[str, str]:
    """Write the commands into `folder`/bin; the environment that puts them first on PATH."""
    bin_dir, state = folder / "bin", folder / "state"
    bin_dir.mkdir(parents=True)
    state.mkdir()
    (state / "next_id").write_text(str(first_job_id))
    for name, body in (("sbatch", SBATCH), ("srun", SRUN), ("sacct", SACCT), ("scancel", NOTHING),
                       ("scontrol", NOTHING)):
        command = bin_dir / name
        command.write_text(f"#!{sys.executable}\n{body}")
        command.chmod(command.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_STATE": str(state)}
