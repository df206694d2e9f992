"""`python count_sigterm_broadcasts.py RUN_DIR OVERRIDE...`: one run, with Lightning's SIGTERM
broadcast counted; each process prints `rank R: N broadcasts`. A run of `trainer.devices=2`
starts its second process by rerunning this script, as it would `scalelab train`."""
import os
import sys

from hydra import compose, initialize_config_module
from lightning.pytorch.loops.training_epoch_loop import _TrainingEpochLoop

from scalelab.platform.train import train

broadcasts = 0
broadcast = _TrainingEpochLoop._broadcast_sigterm_tensor


def counted(loop) -> None:
    global broadcasts
    broadcasts += 1
    broadcast(loop)


_TrainingEpochLoop._broadcast_sigterm_tensor = counted

run_dir, *overrides = sys.argv[1:]
with initialize_config_module(config_module="scalelab.conf", version_base="1.3"):
    cfg = compose(config_name="config", overrides=overrides)
train(cfg, run_dir=run_dir)
print(f"rank {os.environ.get('LOCAL_RANK', '0')}: {broadcasts} broadcasts", flush=True)
