"""Helpers for the prepare tests: corpora of our own, and a prepared folder read back.

Imported as `tests.prepare.prepare_helpers`."""
import bz2
import gzip
import json
import lzma
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from tokenizers import Tokenizer, models, pre_tokenizers

from scalelab.prepare.split import held_out

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hex "
         "jolly zebras; naïve café owners éclair déjà vu 東京 データ 🙂 x=1+2 (a, b) {c: d}").split()


def make_documents(n: int, seed: int = 0, words: int = 60) -> list[str]:
    """Documents of words, punctuation, line breaks and non-ASCII text, of varied lengths."""
    rng = random.Random(seed)
    documents = []
    for i in range(n):
        lines = []
        for _ in range(rng.randint(1, 6)):
            lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, words))))
        documents.append(f"Document {i}.\n" + "\n".join(lines) + ("\n" if i % 3 else ""))
    return documents


def read_meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


def split_ids(folder: Path) -> dict[str, np.ndarray]:
    meta = read_meta(folder)
    return {name: np.fromfile(folder / split["file"], dtype=meta["dtype"]) for name, split in meta["splits"].items()}


def decode(folder: Path, ids) -> str:
    meta = read_meta(folder)
    if meta["tokenizer"]["kind"] == "bytes":
        ids = np.asarray(ids)
        return ids[ids < 256].astype(np.uint8).tobytes().decode("utf-8")
    return Tokenizer.from_file(str(folder / "tokenizer.json")).decode([int(i) for i in ids], skip_special_tokens=False)


def documents_back(folder: Path) -> list[str]:
    """The documents of a prepared folder, decoded, in input order: the i-th comes from val.bin
    when the split rule holds it out, else from train.bin."""
    meta = read_meta(folder)
    eot = meta["end_of_text"]["id"]
    per_split = {}
    for name, ids in split_ids(folder).items():
        assert len(ids) == 0 or ids[-1] == eot, f"{name}.bin does not end with the end-of-text token"
        ends = np.flatnonzero(ids == eot)
        per_split[name] = iter(np.split(ids, ends + 1)[:-1])
    out = []
    n = meta["splits"]["train"]["documents"] + meta["splits"]["val"]["documents"]
    for i in range(n):
        ids = next(per_split["val" if held_out(i, meta["split"]["val_fraction"]) else "train"])
        out.append(decode(folder, ids[:-1]))
    for name, rest in per_split.items():
        assert next(rest, None) is None, f"{name}.bin holds more documents than meta.json counts"
    return out


def folder_state(folder: Path) -> dict[str, bytes]:
    """Every entry of a folder with its bytes: what an interrupted prepare must leave unchanged."""
    return {p.name: p.read_bytes() if p.is_file() else b"<folder>" for p in sorted(folder.iterdir())}


def compressed(data: bytes, compression: str | None) -> bytes:
    return {None: lambda d: d, "gz": lambda d: gzip.compress(d, mtime=0), "bz2": bz2.compress, "xz": lzma.compress,
            "zst": lambda d: zstandard.ZstdCompressor().compress(d)}[compression](data)


def suffix(compression: str | None) -> str:
    return f".{compression}" if compression else ""


def write_text_files(folder: Path, documents: list[str], compression: str | None = None) -> list[Path]:
    """One file per document, named so that path order is document order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"doc{i:04d}.txt{suffix(compression)}" for i in range(len(documents))]
    for path, text in zip(paths, documents):
        path.write_bytes(compressed(text.encode(), compression))
    return paths


def write_jsonl(path: Path, documents: list[str], field: str = "text", compression: str | None = None) -> Path:
    lines = [json.dumps({"id": i, field: text}) for i, text in enumerate(documents)]
    path.write_bytes(compressed(("\n".join(lines) + "\n").encode(), compression))
    return path


def write_parquet(path: Path, documents: list[str], column: str = "text", row_group_size: int = 7) -> Path:
    pq.write_table(pa.table({"id": list(range(len(documents))), column: documents}), path,
                   row_group_size=row_group_size)
    return path


def wide_tokenizer(path: Path, size: int = 70000) -> Path:
    """A word-level tokenizer.json of `size` ids, the corpus' words among the last ones."""
    words = sorted("alpha beta gamma delta epsilon zeta eta theta".split())
    vocab = {f"filler{i}": i for i in range(size - len(words) - 2)}
    vocab.update({w: len(vocab) + k for k, w in enumerate(words)})
    vocab["[UNK]"], vocab["</s>"] = len(vocab), len(vocab) + 1
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(["</s>"])
    tokenizer.save(str(path))
    return path
