"""Reading documents: which files, in which order, cut into pieces where a byte-level BPE splits anyway."""
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from scalelab.prepare import sources
from scalelab.prepare.errors import PrepareError
from scalelab.prepare.sources import Source, cut, cut_point, find_sources, read_pieces, source_of
from scalelab.prepare.split import held_out, in_sample

from tests.prepare.prepare_helpers import make_documents, write_jsonl, write_parquet


def documents_of(pieces) -> list[str]:
    """Join pieces back into documents, checking that every document ends with a marked piece."""
    out, current = [], []
    for text, last in pieces:
        current.append(text)
        if last:
            out.append("".join(current))
            current = []
    assert current == [], "pieces after the last end of a document"
    return out


def test_formats_and_compressions_come_from_the_name():
    assert source_of("a/b.txt") == Source("a/b.txt", "text", None)
    assert source_of("b.JSONL.gz") == Source("b.JSONL.gz", "jsonl", "gz")
    assert source_of("c.ndjson.zst") == Source("c.ndjson.zst", "jsonl", "zst")
    assert source_of("d.parquet") == Source("d.parquet", "parquet", None)
    assert source_of("e.py.xz") == Source("e.py.xz", "text", "xz")
    assert source_of("README") == Source("README", "text", None)


def test_inputs_are_files_folders_and_globs_in_order_each_once(tmp_path):
    for name in ("b/2.txt", "b/1.txt", "b/sub/3.txt", "b/.hidden.txt", "b/.git/x.txt", "a.jsonl", "c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    out = tmp_path / "b" / "out"  # the output folder inside a corpus folder is never read
    out.mkdir()
    (out / "train.bin").write_bytes(b"\0\0")
    found = find_sources([str(tmp_path / "c.txt"), str(tmp_path / "b"), str(tmp_path / "*.jsonl"),
                          str(tmp_path / "b" / "1.txt")], exclude=out)
    assert [Path(s.path).relative_to(tmp_path).as_posix() for s in found] == [
        "c.txt", "b/1.txt", "b/2.txt", "b/sub/3.txt", "a.jsonl"]
    with pytest.raises(PrepareError, match="nothing.txt: no such file, folder or glob match"):
        find_sources([str(tmp_path / "nothing.txt")], exclude=out)


@pytest.mark.parametrize("limit", [40, 200])
def test_a_long_document_is_cut_at_line_breaks_or_spaces_between_words(monkeypatch, limit):
    monkeypatch.setattr(sources, "PIECE_CHARS", limit)
    text = "\n".join(make_documents(30, seed=1))
    pieces = list(cut(text))
    assert "".join(p for p, _ in pieces) == text
    assert [last for _, last in pieces] == [False] * (len(pieces) - 1) + [True]
    assert all(len(p) <= limit for p, _ in pieces) and len(pieces) > len(text) // limit
    for left, _ in pieces[:-1]:  # each cut lies between two non-blank characters
        assert (left.endswith("\n") and not left[-2].isspace()) or not left[-1].isspace()


def test_without_a_line_break_or_space_a_piece_is_cut_at_the_limit():
    assert cut_point("x" * 100, 0, 30) == 30
    assert cut_point("ab cd\n\nef gh", 0, 12) == 9  # before the space between two words, not inside "\n\n"
    assert cut_point("abc de\nfg hi", 0, 12) == 7  # after a line break in the second half before a later space
    assert cut_point("ab cdefghijk", 0, 10) == 2  # the first half only when the second has no such place


def test_pieces_encode_to_the_ids_of_the_whole_document(monkeypatch):
    """Cut where a byte-level BPE's pre-tokenizer splits anyway, the pieces' ids are the document's."""
    monkeypatch.setattr(sources, "PIECE_CHARS", 64)
    text = "".join(make_documents(20, seed=2)) + "  trailing   spaces \n\n\n  and\tindented\n    lines "
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator([text], trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    pieces = [p for p, _ in cut(text)]
    assert len(pieces) > 20
    assert sum((tokenizer.encode(p).ids for p in pieces), []) == tokenizer.encode(text).ids


@pytest.mark.parametrize("separator", [None, "\n\n", "<|sep|>"])
def test_a_text_file_streams_in_pieces_and_splits_at_the_separator(tmp_path, monkeypatch, separator):
    # Reads of 7 bytes split multi-byte characters and separators; pieces of 50 characters cut documents.
    monkeypatch.setattr(sources, "READ_BYTES", 7)
    monkeypatch.setattr(sources, "PIECE_CHARS", 50)
    documents = make_documents(12, seed=3, words=25)
    joiner = separator or ""
    text = joiner.join(documents)
    if separator:
        text = separator + text + separator + separator  # empty documents at both ends are left out
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    pieces = list(read_pieces(source_of(str(path)), "text", separator, tmp_path))
    assert all(len(p) <= 50 for p, _ in pieces)
    expected = [d for d in (text.split(separator) if separator else [text]) if d]
    assert documents_of(pieces) == expected


def test_jsonl_and_parquet_yield_the_field_of_each_row(tmp_path):
    documents = make_documents(30, seed=4)
    jsonl = write_jsonl(tmp_path / "a.jsonl", documents, field="body")
    parquet = write_parquet(tmp_path / "a.parquet", documents, column="body")  # row groups of 7 rows
    for path in (jsonl, parquet):
        assert documents_of(read_pieces(source_of(str(path)), "body", None, tmp_path)) == documents


def test_null_and_empty_values_are_no_documents(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "one"}\n\n{"text": null}\n{"text": ""}\n{"text": "two"}\n')
    assert documents_of(read_pieces(source_of(str(path)), "text", None, tmp_path)) == ["one", "two"]


def test_the_split_is_fixed_by_the_document_number_with_document_0_held_out():
    flags = [held_out(i, 0.1) for i in range(20000)]
    assert flags[0] and flags == [held_out(i, 0.1) for i in range(20000)]
    assert 0.09 < sum(flags) / len(flags) < 0.11
    assert [held_out(i, 0.1) for i in range(1, 200)] != [in_sample(i, 0.1) for i in range(1, 200)]
