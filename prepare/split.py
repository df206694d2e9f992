"""Which documents are held out for validation, and which train a BPE: fixed by the document's
number alone (0, 1, ... in input order), so the same input always splits the same way.

A document is held out when a hash of its number falls below the validation fraction; document 0
always is, so the validation split is never empty. A BPE learns from the training documents
whose number, hashed with another key, falls below the sample fraction.
"""
from __future__ import annotations

import hashlib

RULE = ("document i (numbered from 0 in input order) is held out for validation when i == 0 or "
        "blake2b(i as 8 little-endian bytes, key 'validation', 8-byte digest) / 2**64 < val_fraction")


def _uniform(index: int, key: bytes) -> float:
    digest = hashlib.blake2b(index.to_bytes(8, "little"), digest_size=8, key=key).digest()
    return int.from_bytes(digest, "little") / 2**64


def held_out(index: int, val_fraction: float) -> bool:
    return index == 0 or _uniform(index, b"validation") < val_fraction


def in_sample(index: int, fraction: float) -> bool:
    return fraction >= 1 or _uniform(index, b"bpe sample") < fraction
