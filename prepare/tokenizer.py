"""The tokenizers of `scalelab data prepare`: bytes, a BPE trained on the corpus, or a tokenizer.json.

Each document ends with an end-of-text token:

- `bytes`: ids 0-255 are the bytes of the UTF-8 text, 256 ends a document (a vocabulary of 257).
- `bpe`: a byte-level BPE trained with HuggingFace `tokenizers` on the corpus itself: GPT-2's
  pre-tokenizer, the 256 bytes as its base alphabet (any text encodes, and decodes back
  exactly), `<|endoftext|>` as id 0.
- a tokenizer.json: loaded as it is; its end-of-text token is `--eot`, or the first of
  END_OF_TEXT_NAMES its vocabulary holds.

`tokenizers` encodes a batch on all its threads (RAYON_NUM_THREADS of them). Text that spells
the end-of-text token (`<|endoftext|>` in a document) becomes that token under bpe and a
tokenizer.json, as the `tokenizers` library does with every special token.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable, Sequence, TypeVar

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from scalelab.prepare.errors import PrepareError

END_OF_TEXT = "<|endoftext|>"
END_OF_TEXT_NAMES = (END_OF_TEXT, "<|end_of_text|>", "</s>", "<eos>", "<|eot_id|>")
BYTE_VOCAB = 257  # the 256 bytes and the end-of-text token
BPE_MIN_VOCAB = 257  # a byte-level BPE holds the 256 bytes and the end-of-text token at least

T = TypeVar("T")


class ByteTokenizer:
    kind = "bytes"
    vocab_size = BYTE_VOCAB
    eot_id = 256
    eot_token = END_OF_TEXT

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.frombuffer(text.encode("utf-8"), dtype=np.uint8) for text in texts]

    def decode(self, ids: Sequence[int]) -> str:
        ids = np.asarray(ids)
        return np.asarray(ids[ids != self.eot_id], dtype=np.uint8).tobytes().decode("utf-8")

    def to_json(self) -> str | None:
        return None  # nothing to save: the ids are the bytes


class HFTokenizer:
    """A `tokenizers` Tokenizer as prepare uses it: no special tokens added around a piece, no
    truncation, no padding; an end-of-text token of its vocabulary."""

    def __init__(self, tokenizer: Tokenizer, kind: str, eot_token: str):
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer, self.kind, self.eot_token = tokenizer, kind, eot_token
        self.eot_id = tokenizer.token_to_id(eot_token)
        # the largest id + 1: what the embedding needs even if the vocabulary skips ids
        self.vocab_size = max(tokenizer.get_vocab(with_added_tokens=True).values()) + 1

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        encodings = self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.uint32) for e in encodings]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def to_json(self) -> str:
        return self.tokenizer.to_str()


def train_bpe(batches: Iterable[list[str]], vocab_size: int, show_progress: bool) -> HFTokenizer:
    """A byte-level BPE of at most `vocab_size` tokens learnt from the texts (fewer when the texts
    hold fewer merges); the texts are streamed, never held."""
    if vocab_size < BPE_MIN_VOCAB:
        raise PrepareError(f"--vocab-size {vocab_size} is too small: a byte-level BPE holds the 256 bytes and "
                           f"{END_OF_TEXT}, {BPE_MIN_VOCAB} at least")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=show_progress,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    in_background(lambda: tokenizer.train_from_iterator(batches, trainer))
    return HFTokenizer(tokenizer, "bpe", END_OF_TEXT)


def load_tokenizer_file(path: str, eot: str | None) -> HFTokenizer:
    try:
        tokenizer = Tokenizer.from_file(path)
    except Exception as e:  # noqa: BLE001 - the library raises a bare Exception for a bad file
        raise PrepareError(f"--tokenizer {path}: not a tokenizer.json the tokenizers library can load "
                           f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    if eot is None:
        eot = next((name for name in END_OF_TEXT_NAMES if name in vocab), None)
        if eot is None:
            raise PrepareError(f"--tokenizer {path}: no end-of-text token in its vocabulary (none of "
                               f"{', '.join(END_OF_TEXT_NAMES)}); name one with --eot")
    elif eot not in vocab:
        raise PrepareError(f"--eot {eot}: no such token in {path}")
    return HFTokenizer(tokenizer, "tokenizer.json", eot)


_abandoned: list[threading.Thread] = []  # trainings an interrupt stopped waiting for


def abandoned_training() -> bool:
    """Whether an interrupt left a BPE training running. The tokenizers library's Rust threads
    then go on calling back into Python for text, and a process that shuts down normally aborts
    ("FATAL: exception not rethrown") when one of them next does: it must end with `os._exit`."""
    return bool(_abandoned)


def in_background(work: Callable[[], T]) -> T:
    """`work()` run on another thread while this one waits: a Ctrl-C then stops the wait at once,
    where minutes of BPE merges inside Rust would hold it back until they end."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as e:  # noqa: BLE001 - handed over to the waiting thread as it is
            outcome["error"] = e

    thread = threading.Thread(target=run, name="bpe-training", daemon=True)
    thread.start()
    try:
        thread.join()
    except BaseException:
        _abandoned.append(thread)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]

