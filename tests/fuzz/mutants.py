"""Seeded mutations of `.tflite` flatbuffers: what a damaged download or a hostile file looks like.

Each mutant is one of: bit flips, byte overwrites, truncation, an offset (uoffset) word set to
0 / small / huge / negative, a vtable entry changed, or a size field blown up. The same seed
gives the same mutants, so a failure found once is found again.

>>> a = list(mutants(b"\\x10\\x00\\x00\\x00TFL3" + bytes(56), count=3, seed=1))
>>> b = list(mutants(b"\\x10\\x00\\x00\\x00TFL3" + bytes(56), count=3, seed=1))
>>> a == b and len(a) == 3
True
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator

KINDS = ("bitflip", "overwrite", "truncate", "offset", "vtable", "huge")


def _word_offsets(data: bytes) -> list[int]:
    """4-byte aligned positions (flatbuffer offsets and sizes are 4-byte words)."""
    return list(range(0, len(data) - 4, 4))


def mutate(data: bytes, kind: str, rng: random.Random) -> bytes:
    out = bytearray(data)
    if kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
    elif kind == "overwrite":
        start = rng.randrange(len(out))
        for i in range(start, min(len(out), start + rng.randint(1, 16))):
            out[i] = rng.randrange(256)
    elif kind == "truncate":
        return bytes(out[: rng.randrange(8, max(9, len(out)))])
    elif kind == "offset":
        i = rng.choice(_word_offsets(data))
        value = rng.choice([0, 1, 4, rng.randrange(len(data)), len(data) + 64, 0xFFFFFFFF])
        out[i : i + 4] = struct.pack("<I", value & 0xFFFFFFFF)
    elif kind == "vtable":
        # vtables are 2-byte fields near tables; hit 2-byte aligned positions in the front part
        i = rng.randrange(0, max(2, len(data) // 3), 2)
        out[i : i + 2] = struct.pack("<H", rng.choice([0, 2, 4, 0x7FFF, 0xFFFF, rng.randrange(64)]))
    elif kind == "huge":
        i = rng.choice(_word_offsets(data))
        out[i : i + 4] = struct.pack("<I", rng.choice([0x7FFFFFFF, 0x40000000, 0x00FFFFFF]))
    else:
        raise ValueError(kind)
    return bytes(out)


def mutants(data: bytes, count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """`count` (kind, mutant) pairs of `data`, deterministic for `seed`."""
    rng = random.Random(seed)
    for _ in range(count):
        kind = rng.choice(KINDS)
        yield kind, mutate(data, kind, rng)
