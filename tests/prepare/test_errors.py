"""Bad input and interruptions: one line on stderr, exit status 2 (130 for Ctrl-C), and the output
folder as it was: the previous output intact, no temporary file, no folder made for nothing."""
import lzma
import os
import re
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models

from scalelab.prepare import command
from scalelab.prepare.tokenizer import ByteTokenizer

from tests.prepare.prepare_helpers import (documents_back, folder_state, make_documents, wide_tokenizer,
                                           write_jsonl, write_parquet, write_text_files)


def good_corpus(tmp_path: Path) -> Path:
    return write_text_files(tmp_path / "good", make_documents(10))[0].parent


def binary_file(tmp):
    (tmp / "a.txt").write_text("some text")
    (tmp / "b.txt").write_bytes(b"text, then \x00\x01\x02 binary")
    return [tmp], r"b.txt: a binary file, not text \(a NUL byte at offset 11\)"


def invalid_utf8(tmp):
    (tmp / "a.txt").write_bytes("caf\u00e9 ".encode() + b"\xff\xfe latin-1?")
    return [tmp / "a.txt"], r"a.txt: not UTF-8 text \(byte 0xff at offset 6\)"


def corrupt_gzip(tmp):
    (tmp / "a.txt.gz").write_bytes(b"this is not gzip data at all")
    return [tmp / "a.txt.gz"], r"a.txt.gz: cannot read it as gz text \(Not a gzipped file"


def truncated_xz(tmp):
    data = lzma.compress("".join(f'{{"text": "{d!r}"}}\n' for d in make_documents(50)).encode())
    (tmp / "a.jsonl.xz").write_bytes(data[: len(data) // 2])
    return [tmp / "a.jsonl.xz"], r"a.jsonl.xz: cannot read it as xz jsonl"


def empty_files(tmp):
    (tmp / "a.txt").write_text("")
    (tmp / "b.jsonl").write_text('{"text": ""}\n')
    return [tmp], r"the corpus is empty: 2 file\(s\) and no text in them"


def empty_folder(tmp):
    (tmp / "nothing").mkdir()
    return [tmp / "nothing"], r"no input file in .*nothing"


def missing_input(tmp):
    return [tmp / "missing.txt"], r"missing.txt: no such file, folder or glob match"


def one_document(tmp):
    (tmp / "a.txt").write_text("a single document")
    return [tmp], r"the corpus has 1 document\(s\), all held out for validation"


def missing_field(tmp):
    write_jsonl(tmp / "a.jsonl", ["one", "two"], field="content")
    return [tmp / "a.jsonl"], r"a.jsonl:1: no field 'text' \(its fields: id, content\); --field names the field"


def not_json(tmp):
    (tmp / "a.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    return [tmp / "a.jsonl"], r"a.jsonl:2: not a line of JSON"


def not_a_string(tmp):
    (tmp / "a.jsonl").write_text('{"text": ["a", "list"]}\n')
    return [tmp / "a.jsonl"], r"a.jsonl:1: field 'text' holds a JSON list, not a string"


def missing_column(tmp):
    write_parquet(tmp / "a.parquet", ["one", "two"], column="content")
    return [tmp / "a.parquet"], r"a.parquet: no column 'text' \(its columns: id, content\)"


def numeric_column(tmp):
    write_parquet(tmp / "a.parquet", ["one", "two"])
    return [tmp / "a.parquet", "--field", "id"], r"a.parquet: column 'id' holds int64, not text"


def not_parquet(tmp):
    (tmp / "a.parquet").write_text("not a parquet file")
    return [tmp / "a.parquet"], r"a.parquet: not a parquet file"


def vocabulary_over_uint32(tmp):
    return [good_corpus(tmp), "--vocab-size", str(2**32 + 1)], \
        r"a vocabulary of 4294967297 ids does not fit the largest token file dtype, uint32"


def vocabulary_below_bytes(tmp):
    return [good_corpus(tmp), "--vocab-size", "100"], r"--vocab-size 100 is too small: a byte-level BPE holds the 256"


def tokenizer_over_uint16(tmp):
    return [good_corpus(tmp), "--tokenizer", wide_tokenizer(tmp / "wide.json"), "--dtype", "uint16"], \
        r"--dtype uint16: a vocabulary of 70000 ids does not fit uint16"


def not_a_tokenizer(tmp):
    (tmp / "tokenizer.json").write_text('{"not": "a tokenizer"}')
    return [good_corpus(tmp), "--tokenizer", tmp / "tokenizer.json"], r"tokenizer.json: not a tokenizer.json the tokenizers"


def tokenizer_without_end_of_text(tmp):
    Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).save(str(tmp / "tok.json"))
    return [good_corpus(tmp), "--tokenizer", tmp / "tok.json"], r"tok.json: no end-of-text token .*; name one with --eot"


def missing_tokenizer(tmp):
    return [good_corpus(tmp), "--tokenizer", tmp / "nope.json"], r"nope.json: not bytes, bpe or an existing tokenizer.json"


def vocab_size_with_bytes(tmp):
    return [good_corpus(tmp), "--tokenizer", "bytes", "--vocab-size", "300"], r"--vocab-size .* needs --tokenizer bpe"


def val_fraction_of_one(tmp):
    return [good_corpus(tmp), "--val-fraction", "1"], r"argument --val-fraction: expected a fraction strictly between"


BAD_INPUTS = [binary_file, invalid_utf8, corrupt_gzip, truncated_xz, empty_files, empty_folder, missing_input,
              one_document, missing_field, not_json, not_a_string, missing_column, numeric_column, not_parquet,
              vocabulary_over_uint32, vocabulary_below_bytes, tokenizer_over_uint16, not_a_tokenizer,
              tokenizer_without_end_of_text, missing_tokenizer, vocab_size_with_bytes, val_fraction_of_one]


def previous_output(tmp_path: Path, run_prepare) -> tuple[Path, dict]:
    out = tmp_path / "out"
    assert run_prepare(good_corpus(tmp_path / "before"), "--out", out, "--tokenizer", "bytes").returncode == 0
    return out, folder_state(out)


def assert_one_error_line(done, pattern: str, status: int = 2) -> None:
    assert done.returncode == status
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("scalelab: error: "), done.stderr
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda f: f.__name__)
def test_bad_input_is_one_line_and_leaves_the_output_folder_as_it_was(tmp_path, run_prepare, case):
    out, before = previous_output(tmp_path, run_prepare)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    args, pattern = case(corpus)
    if not any(str(a).startswith("--tokenizer") for a in args):
        args = [*args, "--tokenizer", "bpe" if "--vocab-size" in args else "bytes"]
    assert_one_error_line(run_prepare(*args, "--out", out), pattern)
    assert folder_state(out) == before
    # into a folder that does not exist yet, nothing is made
    assert_one_error_line(run_prepare(*args, "--out", tmp_path / "new" / "out"), pattern)
    assert not (tmp_path / "new").exists()


def test_an_output_path_that_is_a_file_is_refused(tmp_path, run_prepare):
    (tmp_path / "taken").write_text("a file")
    done = run_prepare(good_corpus(tmp_path), "--out", tmp_path / "taken", "--tokenizer", "bytes")
    assert_one_error_line(done, r"--out .*taken: a file, not a folder")
    assert (tmp_path / "taken").read_text() == "a file"


def test_an_unreadable_file_is_refused(tmp_path, run_prepare, monkeypatch):
    corpus = good_corpus(tmp_path)
    locked = corpus / "locked.txt"
    locked.write_text("secret")
    real_open = open

    def open_refusing_locked(path, *args, **kwargs):  # chmod 000 stops no one running as root
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", open_refusing_locked)
    done = run_prepare(corpus, "--out", tmp_path / "out", "--tokenizer", "bytes")
    assert_one_error_line(done, r"locked.txt: cannot read it \(Permission denied\)")
    assert not (tmp_path / "out").exists()


def test_a_bad_file_after_good_ones_leaves_the_previous_output_and_no_temporary_file(tmp_path, run_prepare):
    out, before = previous_output(tmp_path, run_prepare)
    corpus = write_text_files(tmp_path / "corpus", make_documents(30, seed=5))[0].parent
    (corpus / "zz_last.txt").write_bytes(b"\xff")  # read last, after the others were encoded and written
    done = run_prepare(corpus, "--out", out, "--tokenizer", "bytes")
    assert_one_error_line(done, r"zz_last.txt: not UTF-8 text")
    assert folder_state(out) == before


def test_ctrl_c_mid_stream_leaves_the_previous_output_and_no_temporary_file(tmp_path, run_prepare, monkeypatch):
    out, before = previous_output(tmp_path, run_prepare)
    corpus = write_text_files(tmp_path / "corpus", make_documents(200, seed=6))[0].parent
    monkeypatch.setattr(command, "BATCH_CHARS", 2000)  # many batches
    encode = ByteTokenizer.encode
    scratch = out / f".prepare-{os.getpid()}.tmp"
    calls, writing = [], []

    def encode_then_stop(self, texts):
        calls.append(len(texts))
        if len(calls) == 10:  # nine batches already encoded and appended to the new token files
            writing.append(sorted(p.name for p in scratch.iterdir()))
            raise KeyboardInterrupt
        return encode(self, texts)

    monkeypatch.setattr(ByteTokenizer, "encode", encode_then_stop)
    done = run_prepare(corpus, "--out", out, "--tokenizer", "bytes")
    assert writing == [["train.bin", "val.bin"]]  # stopped while the new files were being written
    assert_one_error_line(done, r"interrupted \(SIGINT\); .*out is as it was", status=130)
    assert folder_state(out) == before
    assert documents_back(out) == make_documents(10)
