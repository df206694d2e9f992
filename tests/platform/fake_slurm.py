"""A Slurm cluster of one machine, for tests: `sbatch`, `srun`, `sacct`, `scancel` and `scontrol`
on PATH, so that Hydra's submitit Slurm launcher submits real jobs and their tasks run here.

- `sbatch SCRIPT` reads the script's `#SBATCH` lines (nodes, ntasks-per-node, job-name), gives
  the job the next id and runs the script in the background with the variables of the
  allocation: SLURM_JOB_ID, SLURM_NTASKS, SLURM_NTASKS_PER_NODE, SLURM_JOB_NUM_NODES and
  SLURM_NODELIST (`localhost` for every node). Job arrays are refused.
- `srun [--output F] [--error F] COMMAND` starts SLURM_NTASKS copies of COMMAND, each with its
  SLURM_PROCID, SLURM_LOCALID and SLURM_NODEID, its output in F (`%j`, `%t` replaced), and
  exits with the worst exit status.
- `scontrol requeue ID` (what submitit calls when its job is preempted or times out) kills the
  job's processes, SIGTERM then SIGKILL, and runs its script again, with the same id.
- `sacct -j ID` says RUNNING, then COMPLETED or FAILED; `scancel` does nothing.

Each job leaves in the state folder its script's path (`ID.job`), its task pids (`ID.tasks`: what
Slurm signals), `ID.requeued` once per requeue and its exit status (`ID.rc`). Imported as
`tests.platform.fake_slurm`. What it cannot show: several machines, a queue, job arrays.
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
    subprocess.Popen([str(Path(sys.argv[0]).with_name("_run_job")), str(script), str(job_id)], env=env, stdout=out,
                     stderr=subprocess.STDOUT, start_new_session=True)
print(f"Submitted batch job {job_id}")
'''

# The job: its script, run again while a requeue asks for it, each time in a process group of its
# own (what a requeue kills); then its exit status, for sacct.
RUN_JOB = r'''
import os, subprocess, sys, time
from pathlib import Path

state, (script, job_id) = Path(os.environ["FAKE_SLURM_STATE"]), sys.argv[1:]
requeue = state / f"{job_id}.requeue"
while True:
    batch = subprocess.Popen(["bash", script], start_new_session=True)
    (state / f"{job_id}.pgid").write_text(str(batch.pid))
    status = batch.wait()
    if not requeue.exists():
        break
    while True:  # as Slurm, the job runs again once the last of its processes is gone
        try:
            os.killpg(batch.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    requeue.unlink()
    with open(state / f"{job_id}.requeued", "a") as log:
        log.write("requeued\n")
(state / f"{job_id}.rc").write_text(str(status))
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
state = os.environ["FAKE_SLURM_STATE"]
with open(os.path.join(state, os.environ["SLURM_JOB_ID"] + ".tasks"), "w") as pids:  # whom Slurm signals
    pids.write(" ".join(str(p.pid) for p in procs))
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

# `scontrol requeue ID`: as Slurm, the job's processes get SIGTERM, then SIGKILL, and it runs again.
SCONTROL = r'''
import os, signal, subprocess, sys
from pathlib import Path

state = Path(os.environ["FAKE_SLURM_STATE"])
if sys.argv[1:2] == ["requeue"]:
    job_id = sys.argv[2]
    (state / f"{job_id}.requeue").touch()
    group = (state / f"{job_id}.pgid").read_text()
    # after this command has returned to its caller (it is in the group it kills), as Slurm does
    subprocess.Popen(["bash", "-c", 'while kill -0 "$1"; do sleep 0.05; done; kill -TERM -- "-$0"; sleep 5; '
                      'kill -KILL -- "-$0"', group, str(os.getpid())], start_new_session=True,
                     stderr=subprocess.DEVNULL)
'''

NOTHING = "\n"


def install(folder: Path, first_job_id: int) -> dict[str, str]:
    """Write the commands into `folder`/bin; the environment that puts them first on PATH."""
    bin_dir, state = folder / "bin", folder / "state"
    bin_dir.mkdir(parents=True)
    state.mkdir()
    (state / "next_id").write_text(str(first_job_id))
    for name, body in (("sbatch", SBATCH), ("_run_job", RUN_JOB), ("srun", SRUN), ("sacct", SACCT),
                       ("scontrol", SCONTROL), ("scancel", NOTHING)):
        command = bin_dir / name
        command.write_text(f"#!{sys.executable}\n{body}")
        command.chmod(command.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_STATE": str(state)}
