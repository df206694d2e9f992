"""`scalelab data prepare` against the `tokenizers` library alone, on a corpus of --gb gigabytes.

The corpus: jsonl shards of the running interpreter's standard library sources (its own .py
files, site-packages left out), each file one document, shuffled and repeated until the corpus
holds --gb GB of text; written under a temporary folder and deleted at the end. Each row is a
whole process, timed from start to exit, with its peak memory (the RSS high-water mark that
wait4 reports):

- `prepare bpe`: `scalelab data prepare CORPUS --tokenizer bpe --vocab-size 8192`: the hashing,
  the BPE's training on its sample, the encoding and the writing;
- `prepare tokenizer.json`: the same command given the tokenizer the first one saved, so it
  only hashes, encodes and writes;
- `encode_batch`: the same tokenizer in a plain loop: read the shards, `json.loads` each line,
  `Tokenizer.encode_batch_fast` on batches of --baseline-mb MB of documents (the ids, no
  offsets, as prepare asks for); the time inside that call alone is printed beside it;
- `prepare bytes`: the byte tokenizer, for reference.

The ratio is tokens/s of `prepare tokenizer.json` over `encode_batch` (the goal: close to 1).
Rounds (--rounds) alternate the two, so a busy spell of the machine falls on both; the figures
are each row's median. Run it alone: it uses every core.

    .venv/bin/python benchmarks/prepare_throughput.py [--gb 1] [--rounds 1]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

SHARD_BYTES = 64 << 20

BASELINE = r"""
import json, sys, time
from pathlib import Path
from tokenizers import Tokenizer
tokenizer_path, corpus, batch_bytes = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
tokenizer = Tokenizer.from_file(tokenizer_path)
tokens = documents = 0
encoding = 0.0
def encode(batch):
    global tokens, encoding
    started = time.perf_counter()
    tokens += sum(len(e.ids) for e in tokenizer.encode_batch_fast(batch, add_special_tokens=False))
    encoding += time.perf_counter() - started
batch, size = [], 0
for shard in sorted(corpus.glob("*.jsonl")):
    with open(shard, "rb") as f:
        for line in f:
            text = json.loads(line)["text"]
            batch.append(text)
            size += len(text)
            documents += 1
            if size >= batch_bytes:
                encode(batch)
                batch, size = [], 0
if batch:
    encode(batch)
print(json.dumps({"tokens": tokens, "documents": documents, "encode_seconds": encoding}))
"""


def stdlib_documents() -> list[str]:
    stdlib = sysconfig.get_paths()["stdlib"]
    documents = []
    for path in sorted(glob.glob(os.path.join(stdlib, "**", "*.py"), recursive=True)):
        if "site-packages" in path:
            continue
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):  # a few test files are Latin-1 on purpose
            continue
        if text and "\0" not in text:
            documents.append(text)
    return documents


def write_corpus(folder: Path, gigabytes: float) -> tuple[int, int]:
    """jsonl shards of about SHARD_BYTES; (documents, characters) written."""
    documents = stdlib_documents()
    rng = random.Random(0)
    target = int(gigabytes * 1e9)
    written = count = shard = 0
    out = open(folder / f"shard{shard:03d}.jsonl", "w")
    while written < target:
        rng.shuffle(documents)
        for text in documents:
            out.write(json.dumps({"text": text}) + "\n")
            written += len(text)
            count += 1
            if out.tell() >= SHARD_BYTES:
                out.close()
                shard += 1
                out = open(folder / f"shard{shard:03d}.jsonl", "w")
            if written >= target:
                break
    out.close()
    return count, written


def timed(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of a whole process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out_path = process.stdout
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    output = out_path.read()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited with status {process.returncode}:\n{output}")
    return seconds, usage.ru_maxrss / 1024, output


def prepare(corpus: Path, out: Path, tokenizer: str, *extra: str) -> dict:
    command = [sys.executable, "-m", "scalelab", "data", "prepare", str(corpus), "--out", str(out),
               "--tokenizer", tokenizer, *extra]
    seconds, peak, _ = timed(command)
    meta = json.loads((out / "meta.json").read_text())
    tokens = meta["splits"]["train"]["tokens"] + meta["splits"]["val"]["tokens"]
    documents = meta["splits"]["train"]["documents"] + meta["splits"]["val"]["documents"]
    return {"seconds": seconds, "peak_mb": peak, "tokens": tokens, "documents": documents}


def baseline(tokenizer: Path, corpus: Path, batch_mb: float) -> dict:
    seconds, peak, output = timed([sys.executable, "-c", BASELINE, str(tokenizer), str(corpus),
                                   str(int(batch_mb * 1e6))])
    return {"seconds": seconds, "peak_mb": peak, **json.loads(output)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.0, help="gigabytes of text in the corpus")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--baseline-mb", type=float, default=4.0, help="text per encode_batch call of the baseline")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="prepare_throughput_"))
    try:
        corpus = tmp / "corpus"
        corpus.mkdir()
        started = time.perf_counter()
        documents, characters = write_corpus(corpus, args.gb)
        size = sum(p.stat().st_size for p in corpus.iterdir())
        print(f"corpus: {documents:,} documents, {characters / 1e9:.2f} G characters of Python standard library "
              f"sources, {size / 1e9:.2f} GB of jsonl in {len(list(corpus.iterdir()))} shards "
              f"(written in {time.perf_counter() - started:.0f} s); {os.cpu_count()} cores", flush=True)

        rows: dict[str, list[dict]] = {"prepare bpe": [], "prepare tokenizer.json": [], "encode_batch": [],
                                       "prepare bytes": []}
        rows["prepare bpe"].append(prepare(corpus, tmp / "bpe", "bpe", "--vocab-size", str(args.vocab_size)))
        tokenizer = tmp / "bpe" / "tokenizer.json"
        for _ in range(args.rounds):
            rows["encode_batch"].append(baseline(tokenizer, corpus, args.baseline_mb))
            rows["prepare tokenizer.json"].append(prepare(corpus, tmp / "file", str(tokenizer)))
        rows["prepare bytes"].append(prepare(corpus, tmp / "bytes", "bytes"))
        bpe_meta = json.loads((tmp / "bpe" / "meta.json").read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[name])

    # prepare writes an end-of-text token per document, which encode_batch does not produce
    same = rows["prepare tokenizer.json"][0]["tokens"] == rows["encode_batch"][0]["tokens"] + documents
    sample = bpe_meta["tokenizer"]["sample"]
    print(f"BPE of {bpe_meta['vocab_size']} tokens trained on {sample['characters'] / 1e6:.0f} M characters "
          f"({sample['documents']:,} documents); the same ids from prepare and encode_batch: {same}")
    reference = median("encode_batch", "tokens") / median("encode_batch", "seconds")
    print(f"{'':<24} {'tokens':>13} {'seconds':>8} {'tokens/s':>11} {'MB/s':>6} {'peak RSS MB':>11} {'ratio':>6}")
    for name in rows:
        tokens, seconds, peak = median(name, "tokens"), median(name, "seconds"), median(name, "peak_mb")
        ratio = f"{tokens / seconds / reference:6.2f}" if name == "prepare tokenizer.json" else ""
        print(f"{name:<24} {tokens:>13,.0f} {seconds:>8.1f} {tokens / seconds:>11,.0f} "
              f"{characters / 1e6 / seconds:>6.2f} {peak:>11,.0f} {ratio:>6}")
    encode_only = median("encode_batch", "encode_seconds")
    print(f"encode_batch: {encode_only:.1f} s inside the call, {median('encode_batch', 'tokens') / encode_only:,.0f} "
          "tokens/s")


if __name__ == "__main__":
    main()
