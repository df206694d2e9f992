"""The command itself, in its own process: stopped by Ctrl-C, SIGTERM or SIGKILL while it writes,
it leaves the previous output intact; a later run clears what a killed one left."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.prepare.prepare_helpers import documents_back, folder_state, make_documents, write_jsonl

pytestmark = pytest.mark.slow


def command(*args) -> list[str]:
    return [sys.executable, "-m", "scalelab", "data", "prepare", *map(str, args)]


@pytest.fixture
def setup(tmp_path):
    """A large corpus (about 25 MB, several seconds to encode), a small one already prepared
    into `out`, and the BPE of the small one for the large one to be encoded with."""
    documents = make_documents(400, seed=8)
    write_jsonl(tmp_path / "small.jsonl", documents)
    done = subprocess.run(command(tmp_path / "small.jsonl", "--out", tmp_path / "out", "--vocab-size", "400"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (tmp_path / "large").mkdir()
    for i in range(40):
        write_jsonl(tmp_path / "large" / f"part{i:02d}.jsonl", make_documents(400, seed=100 + i))
    return tmp_path, documents


def interruptible() -> None:
    """In the child: Ctrl-C as a terminal gives it. A test worker may ignore SIGINT (pytest-xdist's
    do), and a child inherits that, as a command started in the background by a script does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_and_stop(tmp_path: Path, how: signal.Signals) -> tuple[subprocess.CompletedProcess, int]:
    """Start a prepare of the large corpus into `out`; once it writes its token files, send `how`.
    The process' outcome and its pid."""
    process = subprocess.Popen(command(tmp_path / "large", "--out", tmp_path / "out", "--tokenizer",
                                       tmp_path / "tokenizer.json"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    scratch = tmp_path / "out" / f".prepare-{process.pid}.tmp"
    deadline = time.monotonic() + 60
    while not (scratch / "train.bin").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the prepare ended before it could be stopped"
    time.sleep(0.3)
    process.send_signal(how)
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), process.pid


@pytest.mark.parametrize("how,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_prepare_leaves_the_previous_output_and_no_temporary_file(setup, how, status):
    tmp_path, documents = setup
    (tmp_path / "tokenizer.json").write_bytes((tmp_path / "out" / "tokenizer.json").read_bytes())
    before = folder_state(tmp_path / "out")
    done, _ = start_and_stop(tmp_path, how)
    assert done.returncode == status, done.stderr
    assert done.stderr.splitlines() == [f"scalelab: error: interrupted ({how.name}); {tmp_path / 'out'} is as it was"]
    assert folder_state(tmp_path / "out") == before
    assert documents_back(tmp_path / "out") == documents


def test_after_a_kill_the_next_prepare_clears_the_leftovers(setup):
    tmp_path, documents = setup
    (tmp_path / "tokenizer.json").write_bytes((tmp_path / "out" / "tokenizer.json").read_bytes())
    before = folder_state(tmp_path / "out")
    killed, pid = start_and_stop(tmp_path, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    left = [p.name for p in (tmp_path / "out").iterdir() if p.name not in before]
    assert left == [f".prepare-{pid}.tmp"]  # the killed run's temporary folder, alone
    assert {k: v for k, v in folder_state(tmp_path / "out").items() if k in before} == before
    done = subprocess.run(command(tmp_path / "small.jsonl", "--out", tmp_path / "out", "--tokenizer", "bytes"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["meta.json", "train.bin", "val.bin"]
    assert documents_back(tmp_path / "out") == documents


def test_ctrl_c_while_a_bpe_trains_leaves_the_previous_output(setup):
    tmp_path, _ = setup
    before = folder_state(tmp_path / "out")
    process = subprocess.Popen(command(tmp_path / "large", "--out", tmp_path / "out", "--vocab-size", "2000"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    while "training a BPE" not in process.stdout.readline():
        assert process.poll() is None, "the prepare ended before it trained"
    time.sleep(1.0)  # into the training: reading the sample, or merging inside the tokenizers library
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.splitlines() == [f"scalelab: error: interrupted (SIGINT); {tmp_path / 'out'} is as it was"]
    assert folder_state(tmp_path / "out") == before


def test_the_help_states_the_memory_bound_and_the_separator():
    done = subprocess.run(command("--help"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "Memory stays bounded whatever the corpus size" in text and "<|endoftext|>" in text
