"""`scalelab data prepare`: text, jsonl and parquet files made into the token files of training.

The output folder gets train.bin and val.bin (token ids, uint16, or uint32 for a vocabulary
over 65536), meta.json (the vocabulary, dtype, token counts, tokenizer, sources with their
sha256, and the split rule) and, for bpe and a tokenizer.json, the tokenizer as tokenizer.json.
`scalelab train data=tokens data.dir=DIR` then needs nothing else.

Memory stays bounded whatever the corpus size: the text is streamed in pieces of at most 64K
characters, and at most AHEAD + 1 batches of BATCH_CHARS characters (1 Mi) are in memory at
once, with the `tokenizers` library's encodings of AHEAD of them (some 50 bytes per character).
Held whole are only a jsonl line, and a parquet row group's text column as pyarrow reads it. A
BPE also learns from at most --bpe-sample-mb million characters, holding their distinct words
and counts. `benchmarks/prepare_throughput.py` measured a peak RSS of 273 MB encoding 1 GB of
text with a tokenizer.json (258 MB on 30 MB), 355 MB with a BPE trained on 495 M of those
characters, 182 MB with bytes.

The byte tokenizer's encoding is a copy of the UTF-8 text: it runs on one core, bound by
reading (135 M tokens/s measured), where a process pool would spend more moving text than it
saves.

The passes: every source is hashed (sha256), a BPE is trained on a sample of the training
documents (bpe only), then every document is encoded, `AHEAD` batches at once on the
tokenizer's threads, and appended to its split's file with the end-of-text token after it.
"""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, TextIO

import numpy as np

from scalelab.prepare.errors import PrepareError
from scalelab.prepare.meta import FORMAT, META, VERSION, meta_text
from scalelab.prepare.progress import Progress
from scalelab.prepare.sources import PIECE_CHARS, Source, find_sources, fingerprint, read_pieces
from scalelab.prepare.split import RULE, held_out, in_sample
from scalelab.prepare.tokenizer import ByteTokenizer, HFTokenizer, load_tokenizer_file, train_bpe
from scalelab.prepare.writer import OutputFolder, TokenFile, token_dtype

DEFAULT_BPE_VOCAB = 8192
DEFAULT_VAL_FRACTION = 0.005
DEFAULT_BPE_SAMPLE_MB = 512
BATCH_CHARS = 1 << 20  # characters encoded in one call of the tokenizer
AHEAD = 2  # batches encoding at once: the threads start on the next while the last piece of one ends


@dataclass
class Options:
    inputs: list[str]
    out: str
    tokenizer: str = "bpe"  # bytes, bpe, or the path of a tokenizer.json
    vocab_size: Optional[int] = None  # bpe only; DEFAULT_BPE_VOCAB when None
    field: str = "text"  # the jsonl field or parquet column holding the text
    text_separator: Optional[str] = None  # cuts a text file into documents; None: one per file
    val_fraction: float = DEFAULT_VAL_FRACTION
    workers: Optional[int] = None  # the tokenizer's threads; None: every core
    dtype: str = "auto"  # auto, uint16 or uint32
    eot: Optional[str] = None  # a tokenizer.json's end-of-text token; None: a usual name it holds
    bpe_sample_mb: float = DEFAULT_BPE_SAMPLE_MB  # millions of characters a BPE learns from


@dataclass
class Piece:
    text: str
    source: int  # the number of its file
    document: int  # the number of its document, over all files
    held_out: bool  # in the validation split
    last: bool  # ends its document: the end-of-text token follows


class Corpus:
    """The documents of the sources as numbered pieces, read afresh at each pass, which counts
    the documents it meets (complete once a pass has read every file)."""

    def __init__(self, sources: list[Source], options: Options, scratch: Path):
        self.sources, self.options, self.scratch = sources, options, scratch
        self.reading = ""  # the file being read, for progress lines
        self.documents = 0
        self.training_documents = 0
        self.per_source = [0] * len(sources)

    def pieces(self) -> Iterator[Piece]:
        o = self.options
        self.documents = self.training_documents = 0
        self.per_source = [0] * len(self.sources)
        for number, source in enumerate(self.sources):
            self.reading = source.path
            for text, last in read_pieces(source, o.field, o.text_separator, self.scratch):
                held = held_out(self.documents, o.val_fraction)
                yield Piece(text, number, self.documents, held, last)
                if last:
                    self.documents += 1
                    self.training_documents += not held
                    self.per_source[number] += 1

    def check_split(self) -> None:
        """Refuse a corpus without text, or whose documents all went to validation."""
        if self.documents == 0:
            raise PrepareError(f"the corpus is empty: {len(self.sources)} file(s) and no text in them")
        if self.training_documents == 0:
            raise PrepareError(f"the corpus has {self.documents} document(s), all held out for validation (document 0 "
                               "always is): the split needs 2 at least (--text-separator cuts a text file into several)")


def prepare(options: Options, progress: Optional[TextIO] = None) -> dict:
    """Write the output folder; return its meta.json. A PrepareError names what is wrong.

    What it does goes to stdout, line by line; the progress of the encoding to `progress`, so
    that an error leaves only its own line on stderr (None: sys.stderr)."""
    progress = progress or sys.stderr
    started = time.monotonic()
    _check(options)
    if options.workers:
        # read by the tokenizers library when its thread pool starts, at its first batch
        os.environ["RAYON_NUM_THREADS"] = str(options.workers)
    out = OutputFolder(options.out)
    sources = find_sources(options.inputs, exclude=out.path)
    if not sources:
        raise PrepareError(f"no input file in {' '.join(options.inputs)}")
    print(f"prepare: hashing {len(sources)} file(s)", flush=True)
    described = [_describe(s) for s in sources]
    with out:
        corpus = Corpus(sources, options, out.scratch)
        tokenizer, trained_on = _tokenizer(options, corpus, sum(d["bytes"] for d in described), progress)
        dtype = token_dtype(tokenizer.vocab_size, options.dtype)
        print(f"prepare: encoding with {tokenizer.kind} (vocabulary {tokenizer.vocab_size}, {dtype.name} ids)",
              flush=True)
        splits = _write_tokens(corpus, tokenizer, dtype, out.scratch, progress)
        names = ["train.bin", "val.bin"]
        saved = tokenizer.to_json()
        if saved is not None:
            (out.scratch / "tokenizer.json").write_text(saved)
            names.append("tokenizer.json")
        for source, documents in zip(described, corpus.per_source):
            source["documents"] = documents
        meta = {
            "format": FORMAT, "version": VERSION,
            "vocab_size": tokenizer.vocab_size,
            "dtype": dtype.name,
            "splits": splits,
            "end_of_text": {"token": tokenizer.eot_token, "id": tokenizer.eot_id,
                            "rule": "every document ends with it; empty documents are left out"},
            "tokenizer": {"kind": tokenizer.kind, "file": "tokenizer.json" if "tokenizer.json" in names else None,
                          **({"source": options.tokenizer, "source_sha256": fingerprint(options.tokenizer)[1]}
                             if tokenizer.kind == "tokenizer.json" else {}),
                          **trained_on},
            "split": {"val_fraction": options.val_fraction, "rule": RULE},
            "documents": {"field": options.field, "text_separator": options.text_separator,
                          "piece_chars": PIECE_CHARS},
            "sources": described,
        }
        (out.scratch / META).write_text(meta_text(meta))
        names.append(META)
        out.publish(names)
    seconds = time.monotonic() - started
    total = splits["train"]["tokens"] + splits["val"]["tokens"]
    print(f"prepared {options.out}: {splits['train']['tokens']:,} training tokens ({splits['train']['documents']:,} "
          f"documents), {splits['val']['tokens']:,} validation tokens ({splits['val']['documents']:,} documents); "
          f"{tokenizer.kind}, vocabulary {tokenizer.vocab_size}, {dtype.name}; {seconds:.1f} s, "
          f"{total / seconds:,.0f} tokens/s")
    print(f"train on it: scalelab train data=tokens data.dir={options.out}")
    return meta


def _check(o: Options) -> None:
    """Refuse options that cannot work, before any file is read."""
    if not 0 < o.val_fraction < 1:
        raise PrepareError(f"--val-fraction {o.val_fraction} must lie strictly between 0 and 1")
    if o.tokenizer not in ("bytes", "bpe") and not os.path.isfile(o.tokenizer):
        raise PrepareError(f"--tokenizer {o.tokenizer}: not bytes, bpe or an existing tokenizer.json file")
    if o.vocab_size is not None:
        if o.tokenizer != "bpe":
            raise PrepareError("--vocab-size sets the size of a BPE trained here: it needs --tokenizer bpe")
        token_dtype(o.vocab_size, o.dtype)  # refuses a vocabulary no token file holds
    if o.eot is not None and o.tokenizer in ("bytes", "bpe"):
        raise PrepareError(f"--eot names the end-of-text token of a tokenizer.json; {o.tokenizer} uses <|endoftext|>")
    if o.text_separator == "":
        raise PrepareError("--text-separator is empty: leave it out for one document per text file")
    if not o.bpe_sample_mb > 0:
        raise PrepareError(f"--bpe-sample-mb {o.bpe_sample_mb} must be > 0")
    if o.workers is not None and o.workers < 1:
        raise PrepareError(f"--workers {o.workers} must be >= 1")


def _describe(source: Source) -> dict:
    size, sha256 = fingerprint(source.path)
    return {"path": source.path, "format": source.format, "compression": source.compression,
            "bytes": size, "sha256": sha256}


def _tokenizer(o: Options, corpus: Corpus, corpus_bytes: int, progress: TextIO) -> tuple[ByteTokenizer | HFTokenizer, dict]:
    """The tokenizer, and for a BPE what it learnt from."""
    if o.tokenizer == "bytes":
        return ByteTokenizer(), {}
    if o.tokenizer != "bpe":
        return load_tokenizer_file(o.tokenizer, o.eot), {}
    vocab_size = o.vocab_size or DEFAULT_BPE_VOCAB
    budget = int(o.bpe_sample_mb * 1e6)
    fraction = min(1.0, budget / max(corpus_bytes, 1))
    sample = {"characters": 0, "documents": 0}
    print(f"prepare: training a BPE of {vocab_size} tokens on up to {budget:,} characters of training text",
          flush=True)

    def batches() -> Iterator[list[str]]:
        batch: list[str] = []
        size = 0
        with closing(corpus.pieces()) as pieces:
            for piece in pieces:
                if piece.held_out or not in_sample(piece.document, fraction):
                    continue
                batch.append(piece.text)
                size += len(piece.text)
                sample["characters"] += len(piece.text)
                sample["documents"] += piece.last
                if size >= BATCH_CHARS or sample["characters"] >= budget:
                    yield batch
                    batch, size = [], 0
                if sample["characters"] >= budget:
                    return
        if batch:
            yield batch

    tokenizer = train_bpe(batches(), vocab_size, show_progress=progress.isatty())
    if sample["characters"] == 0:  # then the pass read every file, and counted every document
        corpus.check_split()
        raise PrepareError(f"the BPE sample is empty: --bpe-sample-mb {o.bpe_sample_mb} takes none of the "
                           f"{corpus.training_documents} training documents; raise it")
    trained_on = {"requested_vocab_size": vocab_size,
                  "sample": {**sample, "fraction": fraction,
                             "rule": "training documents with blake2b(i, key 'bpe sample') / 2**64 < fraction, "
                                     "in input order, up to --bpe-sample-mb million characters"}}
    return tokenizer, trained_on


def _write_tokens(corpus: Corpus, tokenizer, dtype: np.dtype, folder: Path, stream: TextIO) -> dict:
    """Encode every document into train.bin and val.bin in `folder`; the splits' counts."""
    files = {False: TokenFile(folder / "train.bin", dtype), True: TokenFile(folder / "val.bin", dtype)}
    end = np.array([tokenizer.eot_id], dtype=np.uint32)
    progress = Progress(stream)
    try:
        for batch, ids in _encoded(tokenizer, _batches(corpus.pieces())):
            parts: dict[bool, list[np.ndarray]] = {False: [], True: []}
            written = 0
            for piece, piece_ids in zip(batch, ids):
                parts[piece.held_out].append(piece_ids)
                written += len(piece_ids)
                if piece.last:
                    parts[piece.held_out].append(end)
                    written += 1
            for split, file in files.items():
                file.append(parts[split])
            progress.update(written, corpus.reading)
    finally:
        progress.close()
        for file in files.values():
            file.close()
    corpus.check_split()
    return {"train": {"file": "train.bin", "tokens": files[False].tokens, "documents": corpus.training_documents},
            "val": {"file": "val.bin", "tokens": files[True].tokens,
                    "documents": corpus.documents - corpus.training_documents}}


def _batches(pieces: Iterator[Piece]) -> Iterator[list[Piece]]:
    batch: list[Piece] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece.text)
        if size >= BATCH_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _encoded(tokenizer, batches: Iterator[list[Piece]]) -> Iterator[tuple[list[Piece], list[np.ndarray]]]:
    """(batch, its ids) in order, AHEAD batches encoding at once on the tokenizer's threads (the
    `tokenizers` library lets go of the GIL while it encodes)."""
    with ThreadPoolExecutor(AHEAD, thread_name_prefix="encode") as pool:
        pending: deque = deque()
        try:
            for batch in batches:
                pending.append((batch, pool.submit(tokenizer.encode, [p.text for p in batch])))
                if len(pending) >= AHEAD:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()
