"""`scalelab data prepare` end to end in this process: each input kind and tokenizer round-trips,
meta.json describes the folder, the same input gives the same bytes."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from scalelab.prepare.split import RULE

from tests.prepare.prepare_helpers import (compressed, documents_back, folder_state, read_meta, split_ids,
                                           wide_tokenizer, write_jsonl, write_parquet, write_text_files)


def test_text_files_round_trip_as_bytes(tmp_path, documents, run_prepare):
    write_text_files(tmp_path / "corpus", documents)
    done = run_prepare(tmp_path / "corpus", "--out", tmp_path / "out", "--tokenizer", "bytes", "--val-fraction", "0.2")
    assert done.returncode == 0 and done.stderr == ""
    assert documents_back(tmp_path / "out") == documents
    meta = read_meta(tmp_path / "out")
    assert (meta["vocab_size"], meta["dtype"], meta["end_of_text"]["id"]) == (257, "uint16", 256)
    assert meta["splits"]["val"]["documents"] >= 2 and meta["splits"]["train"]["documents"] >= 20
    assert not (tmp_path / "out" / "tokenizer.json").exists()
    assert f"scalelab train data=tokens data.dir={tmp_path / 'out'}" in done.stdout


@pytest.mark.parametrize("compression", [None, "gz", "bz2", "xz", "zst"])
def test_jsonl_field_round_trips_compressed_or_not(tmp_path, documents, run_prepare, compression):
    suffix = f".{compression}" if compression else ""
    write_jsonl(tmp_path / f"part.jsonl{suffix}", documents[:25], field="body", compression=compression)
    write_jsonl(tmp_path / f"part2.jsonl{suffix}", documents[25:], field="body", compression=compression)
    done = run_prepare(tmp_path / "part.jsonl*", tmp_path / "part2.jsonl*", "--field", "body",
                       "--out", tmp_path / "out", "--tokenizer", "bytes")
    assert done.returncode == 0, done.stderr
    assert documents_back(tmp_path / "out") == documents
    assert [s["documents"] for s in read_meta(tmp_path / "out")["sources"]] == [25, 15]
    assert {s["compression"] for s in read_meta(tmp_path / "out")["sources"]} == {compression}


def test_gzipped_text_files_round_trip(tmp_path, documents, run_prepare):
    write_text_files(tmp_path / "corpus", documents, compression="gz")
    assert run_prepare(tmp_path / "corpus", "--out", tmp_path / "out", "--tokenizer", "bytes").returncode == 0
    assert documents_back(tmp_path / "out") == documents


@pytest.mark.parametrize("compression", [None, "gz"])
def test_parquet_column_round_trips(tmp_path, documents, run_prepare, compression):
    path = write_parquet(tmp_path / "table.parquet", documents, column="content")
    if compression:  # parquet is read by seeking: a compressed one is unpacked into the output's scratch folder
        Path(f"{path}.gz").write_bytes(compressed(path.read_bytes(), compression))
        path.unlink()
        path = Path(f"{path}.gz")
    done = run_prepare(path, "--field", "content", "--out", tmp_path / "out", "--tokenizer", "bpe",
                       "--vocab-size", "400")
    assert done.returncode == 0, done.stderr
    assert documents_back(tmp_path / "out") == documents


def test_text_separator_cuts_a_text_file_into_documents(tmp_path, documents, run_prepare):
    (tmp_path / "book.txt").write_text("\n\n".join(d.strip("\n") for d in documents))
    done = run_prepare(tmp_path / "book.txt", "--text-separator", r"\n\n", "--out", tmp_path / "out",
                       "--tokenizer", "bytes")
    assert done.returncode == 0, done.stderr
    assert documents_back(tmp_path / "out") == [d.strip("\n") for d in documents]


def test_bpe_round_trips_and_its_tokenizer_json_gives_the_same_ids(tmp_path, documents, run_prepare):
    write_text_files(tmp_path / "corpus", documents)
    done = run_prepare(tmp_path / "corpus", "--out", tmp_path / "bpe", "--tokenizer", "bpe", "--vocab-size", "400")
    assert done.returncode == 0, done.stderr
    assert documents_back(tmp_path / "bpe") == documents
    meta = read_meta(tmp_path / "bpe")
    tokenizer = Tokenizer.from_file(str(tmp_path / "bpe" / "tokenizer.json"))
    assert meta["vocab_size"] == tokenizer.get_vocab_size() == 400
    assert meta["end_of_text"] == {"token": "<|endoftext|>", "id": 0, "rule": meta["end_of_text"]["rule"]}
    train = split_ids(tmp_path / "bpe")["train"]
    assert len(train) < sum(map(len, documents)) / 2  # merges learnt: far fewer tokens than bytes
    # the tokenizer it saved, given back, encodes the same corpus to the same files
    again = run_prepare(tmp_path / "corpus", "--out", tmp_path / "file", "--tokenizer", tmp_path / "bpe" / "tokenizer.json")
    assert again.returncode == 0, again.stderr
    for name in ("train.bin", "val.bin", "tokenizer.json"):
        assert (tmp_path / "file" / name).read_bytes() == (tmp_path / "bpe" / name).read_bytes()
    assert read_meta(tmp_path / "file")["tokenizer"]["kind"] == "tokenizer.json"


def test_a_vocabulary_over_65536_is_stored_as_uint32(tmp_path, run_prepare):
    tokenizer = wide_tokenizer(tmp_path / "wide.json")
    write_text_files(tmp_path / "corpus", ["alpha beta gamma", "delta epsilon", "zeta eta theta alpha", "beta"])
    done = run_prepare(tmp_path / "corpus", "--out", tmp_path / "out", "--tokenizer", tokenizer, "--val-fraction", "0.1")
    assert done.returncode == 0, done.stderr
    meta = read_meta(tmp_path / "out")
    assert (meta["dtype"], meta["vocab_size"]) == ("uint32", 70000)
    assert meta["end_of_text"] == {"token": "</s>", "id": 69999, "rule": meta["end_of_text"]["rule"]}
    ids = np.concatenate(list(split_ids(tmp_path / "out").values()))
    assert ids.min() > 65535 and (tmp_path / "out" / "train.bin").stat().st_size == 4 * meta["splits"]["train"]["tokens"]
    assert documents_back(tmp_path / "out") == ["alpha beta gamma", "delta epsilon", "zeta eta theta alpha", "beta"]


def test_meta_json_describes_the_folder(tmp_path, documents, run_prepare):
    paths = write_text_files(tmp_path / "corpus", documents[:30])
    write_jsonl(tmp_path / "more.jsonl", documents[30:])
    done = run_prepare(tmp_path / "corpus", tmp_path / "more.jsonl", "--out", tmp_path / "out", "--vocab-size", "300",
                       "--val-fraction", "0.1")
    assert done.returncode == 0, done.stderr
    meta = read_meta(tmp_path / "out")
    assert set(meta) == {"format", "version", "vocab_size", "dtype", "splits", "end_of_text", "tokenizer", "split",
                         "documents", "sources"}
    assert (meta["format"], meta["version"], meta["dtype"], meta["vocab_size"]) == ("scalelab-tokens", 1, "uint16", 300)
    for name, split in meta["splits"].items():
        assert (tmp_path / "out" / split["file"]).stat().st_size == 2 * split["tokens"]
    assert meta["splits"]["train"]["documents"] + meta["splits"]["val"]["documents"] == 40
    assert meta["split"] == {"val_fraction": 0.1, "rule": RULE}
    assert meta["tokenizer"]["kind"] == "bpe" and meta["tokenizer"]["file"] == "tokenizer.json"
    assert meta["tokenizer"]["sample"]["documents"] == meta["splits"]["train"]["documents"]  # a sample of all of it
    sources = meta["sources"]
    assert [s["path"] for s in sources] == [str(p) for p in paths] + [str(tmp_path / "more.jsonl")]
    for source in sources:
        data = Path(source["path"]).read_bytes()
        assert (source["bytes"], source["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert [s["format"] for s in sources] == ["text"] * 30 + ["jsonl"]
    assert [s["documents"] for s in sources] == [1] * 30 + [10]


def test_the_same_input_gives_the_same_files(tmp_path, documents, run_prepare):
    write_text_files(tmp_path / "corpus", documents)
    for out in ("a", "b"):
        assert run_prepare(tmp_path / "corpus", "--out", tmp_path / out, "--vocab-size", "400").returncode == 0
    assert folder_state(tmp_path / "a") == folder_state(tmp_path / "b")
    assert set(folder_state(tmp_path / "a")) == {"train.bin", "val.bin", "tokenizer.json", "meta.json"}


def test_a_prepare_into_a_folder_replaces_the_previous_output_whole(tmp_path, documents, run_prepare):
    write_text_files(tmp_path / "corpus", documents)
    assert run_prepare(tmp_path / "corpus", "--out", tmp_path / "out", "--vocab-size", "400").returncode == 0
    assert run_prepare(tmp_path / "corpus", "--out", tmp_path / "out", "--tokenizer", "bytes").returncode == 0
    assert set(folder_state(tmp_path / "out")) == {"train.bin", "val.bin", "meta.json"}  # the BPE's file is gone
    assert documents_back(tmp_path / "out") == documents


def test_the_output_folder_may_sit_inside_the_corpus_folder(tmp_path, documents, run_prepare):
    write_text_files(tmp_path / "corpus", documents)
    for _ in range(2):  # the second run does not read the first one's token files as text
        done = run_prepare(tmp_path / "corpus", "--out", tmp_path / "corpus" / "prepared", "--tokenizer", "bytes")
        assert done.returncode == 0, done.stderr
    assert documents_back(tmp_path / "corpus" / "prepared") == documents
