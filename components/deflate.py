"""Deterministic gzip: the same bytes for the same input on any OS, Python and zlib build.

`gzip.compress` hands the deflate stream to whatever zlib the interpreter links (zlib, zlib-ng,
Apple's, Intel's), and since Python 3.11 lets it write the header's OS byte: a Mac laptop and
Linux CI then send EC2 different user-data, which replaces the server. This encoder is plain
Python over integers (no floats, no dict-order or hash-seed dependence), so its output is a
function of the input alone. Any inflater reads it (RFC 1951 / RFC 1952).

LZ77 with hash chains and lazy matching, then dynamic-Huffman blocks (split where new codes pay
for themselves) with length-limited canonical codes.
"""

from __future__ import annotations

import binascii
import functools
import heapq
from dataclasses import dataclass

_WINDOW = 32768
_MIN_MATCH, _MAX_MATCH = 3, 258
_MAX_CHAIN = 256  # candidates tried per position: ratio near zlib -9 at a fraction of its work
_NICE = 128  # a match this long is taken without looking further
_SPLIT_UNIT = 1024  # tokens: the smallest block considered when choosing where blocks end
# gzip header: magic, deflate, no flags, mtime 0, XFL 2 (best compression), OS 255 (unknown).
HEADER = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 2, 255])

# RFC 1951 3.2.5: (base, extra bits) of length codes 257..285 and distance codes 0..29.
_LENGTHS = [(3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0), (10, 0), (11, 1), (13, 1),
            (15, 1), (17, 1), (19, 2), (23, 2), (27, 2), (31, 2), (35, 3), (43, 3), (51, 3),
            (59, 3), (67, 4), (83, 4), (99, 4), (115, 4), (131, 5), (163, 5), (195, 5),
            (227, 5), (258, 0)]
_DISTS = [(1, 0), (2, 0), (3, 0), (4, 0), (5, 1), (7, 1), (9, 2), (13, 2), (17, 3), (25, 3),
          (33, 4), (49, 4), (65, 5), (97, 5), (129, 6), (193, 6), (257, 7), (385, 7), (513, 8),
          (769, 8), (1025, 9), (1537, 9), (2049, 10), (3073, 10), (4097, 11), (6145, 11),
          (8193, 12), (12289, 12), (16385, 13), (24577, 13)]
_CL_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)


def _code_of(value: int, table: list[tuple[int, int]]) -> int:
    code = 0
    while code + 1 < len(table) and table[code + 1][0] <= value:
        code += 1
    return code


_LENGTH_CODE = [0] * 3 + [_code_of(n, _LENGTHS) for n in range(3, _MAX_MATCH + 1)]


def _dist_code(distance: int) -> int:
    return _code_of(distance, _DISTS)


class _Bits:
    """LSB-first bit writer (RFC 1951 3.1.1)."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value: int, count: int) -> None:
        self.acc |= value << self.n
        self.n += count
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def flush(self) -> bytes:
        if self.n:
            self.out.append(self.acc & 0xFF)
            self.acc = self.n = 0
        return bytes(self.out)


def _match_length(data: bytes, a: int, b: int, limit: int) -> int:
    n = 0
    while n + 16 <= limit and data[a + n:a + n + 16] == data[b + n:b + n + 16]:
        n += 16
    while n < limit and data[a + n] == data[b + n]:
        n += 1
    return n


def _tokens(data: bytes) -> list[tuple[int, int]]:
    """LZ77 tokens: (literal byte, 0) or (length, distance)."""
    chains: dict[bytes, list[int]] = {}
    size = len(data)

    def best(i: int) -> tuple[int, int]:
        limit = min(_MAX_MATCH, size - i)
        if limit < _MIN_MATCH:
            return 0, 0
        found_len, found_dist = 0, 0
        candidates = chains.get(data[i:i + 3], ())
        for k in range(len(candidates) - 1, max(-1, len(candidates) - 1 - _MAX_CHAIN), -1):
            j = candidates[k]
            if i - j > _WINDOW:
                break
            if found_len and data[j + found_len] != data[i + found_len]:
                continue
            length = _match_length(data, i, j, limit)
            if length > found_len:
                found_len, found_dist = length, i - j
                if length >= _NICE or length == limit:
                    break
        return (found_len, found_dist) if found_len >= _MIN_MATCH else (0, 0)

    def insert(i: int) -> None:
        if i + 3 <= size:
            chains.setdefault(data[i:i + 3], []).append(i)

    out: list[tuple[int, int]] = []
    i = 0
    pending = best(0)
    while i < size:
        length, dist = pending
        insert(i)
        if length:
            nxt = best(i + 1) if length < _NICE else (0, 0)
            if nxt[0] > length:  # lazy: a longer match one byte on wins
                out.append((data[i], 0))
                i += 1
                pending = nxt
                continue
            out.append((length, dist))
            for k in range(i + 1, i + length):
                insert(k)
            i += length
        else:
            out.append((data[i], 0))
            i += 1
        pending = best(i) if i < size else (0, 0)
    return out


def _huffman_lengths(freqs: list[int], limit: int) -> list[int]:
    """Code lengths of an optimal prefix code no longer than `limit` (package-merge when plain
    Huffman is too deep). Ties broken by symbol number, so the result is fully determined."""
    used = [s for s, f in enumerate(freqs) if f]
    for s in range(len(freqs)):  # two symbols at least: every code is then complete
        if len(used) >= 2:
            break
        if s not in used:
            used.append(s)
    used.sort()
    weight = {s: freqs[s] or 1 for s in used}
    lengths = [0] * len(freqs)
    heap: list[tuple[int, int, list[int]]] = [(weight[s], s, [s]) for s in used]
    heapq.heapify(heap)
    order = len(freqs)
    while len(heap) > 1:
        w1, _, s1 = heapq.heappop(heap)
        w2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (w1 + w2, order, s1 + s2))
        order += 1
    if max(lengths) <= limit:
        return lengths
    leaves = sorted((weight[s], s) for s in used)
    items: list[tuple[int, list[int]]] = [(w, [s]) for w, s in leaves]
    for _ in range(limit - 1):
        packages = [(items[k][0] + items[k + 1][0], items[k][1] + items[k + 1][1])
                    for k in range(0, len(items) - 1, 2)]
        items = sorted([(w, [s]) for w, s in leaves] + packages, key=lambda it: it[0])
    lengths = [0] * len(freqs)
    for _, symbols in items[:2 * len(used) - 2]:
        for s in symbols:
            lengths[s] += 1
    return lengths


def _canonical(lengths: list[int]) -> list[int]:
    """RFC 1951 3.2.2 codes, bit-reversed for the LSB-first writer."""
    max_len = max(lengths)
    count = [0] * (max_len + 1)
    for n in lengths:
        if n:
            count[n] += 1
    code, next_code = 0, [0] * (max_len + 2)
    for bits in range(1, max_len + 1):
        code = (code + count[bits - 1]) << 1 if bits > 1 else 0
        next_code[bits] = code
    codes = [0] * len(lengths)
    for s, n in enumerate(lengths):
        if n:
            c = next_code[n]
            next_code[n] += 1
            codes[s] = int(f"{c:0{n}b}"[::-1], 2)
    return codes


def _run_lengths(lengths: list[int]) -> list[tuple[int, int, int]]:
    """Code lengths as code-length symbols (sym, extra value, extra bits): 16/17/18 runs."""
    out: list[tuple[int, int, int]] = []
    i = 0
    while i < len(lengths):
        n = lengths[i]
        run = 1
        while i + run < len(lengths) and lengths[i + run] == n:
            run += 1
        i += run
        if n == 0:
            while run >= 11:
                take = min(run, 138)
                out.append((18, take - 11, 7))
                run -= take
            if run >= 3:
                out.append((17, run - 3, 3))
                run = 0
            out += [(0, 0, 0)] * run
        else:
            out.append((n, 0, 0))
            run -= 1
            while run >= 3:
                take = min(run, 6)
                out.append((16, take - 3, 2))
                run -= take
            out += [(n, 0, 0)] * run
    return out


@dataclass(frozen=True)
class _Plan:
    """One dynamic block's codes, and its exact size in bits."""

    lit_len: list[int]
    dist_len: list[int]
    cl_len: list[int]
    runs: list[tuple[int, int, int]]
    hlit: int
    hdist: int
    hclen: int
    cost: int


def _plan(tokens: list[tuple[int, int]]) -> _Plan:
    lit_freq, dist_freq = [0] * 286, [0] * 30
    extra = 0
    for value, dist in tokens:
        if dist:
            lc, dc = _LENGTH_CODE[value], _dist_code(dist)
            lit_freq[257 + lc] += 1
            dist_freq[dc] += 1
            extra += _LENGTHS[lc][1] + _DISTS[dc][1]
        else:
            lit_freq[value] += 1
    lit_freq[256] = 1
    lit_len = _huffman_lengths(lit_freq, 15)
    dist_len = _huffman_lengths(dist_freq, 15)
    hlit = max(257, max(s for s, n in enumerate(lit_len) if n) + 1)
    hdist = max(1, max(s for s, n in enumerate(dist_len) if n) + 1)
    runs = _run_lengths(lit_len[:hlit] + dist_len[:hdist])
    cl_freq = [0] * 19
    for sym, _, _ in runs:
        cl_freq[sym] += 1
    cl_len = _huffman_lengths(cl_freq, 7)
    hclen = max(4, max(k for k, sym in enumerate(_CL_ORDER) if cl_len[sym]) + 1)
    cost = (3 + 14 + 3 * hclen + sum(cl_len[sym] + bits for sym, _, bits in runs) + extra
            + sum(f * n for f, n in zip(lit_freq, lit_len, strict=True))
            + sum(f * n for f, n in zip(dist_freq, dist_len, strict=True)))
    return _Plan(lit_len, dist_len, cl_len, runs, hlit, hdist, hclen, cost)


def _split(tokens: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Blocks where new codes pay for their header: start from small runs of tokens and merge
    neighbours while one block costs fewer bits than two."""
    blocks = [tokens[k:k + _SPLIT_UNIT] for k in range(0, len(tokens), _SPLIT_UNIT)]
    costs = [_plan(b).cost for b in blocks]
    merged = True
    while merged and len(blocks) > 1:
        merged = False
        gains = []
        for k in range(len(blocks) - 1):
            joined = _plan(blocks[k] + blocks[k + 1]).cost
            gains.append((costs[k] + costs[k + 1] - joined, -k, joined))
        gain, neg_k, joined = max(gains)
        if gain > 0:
            k = -neg_k
            blocks[k:k + 2] = [blocks[k] + blocks[k + 1]]
            costs[k:k + 2] = [joined]
            merged = True
    return blocks


def _block(bits: _Bits, tokens: list[tuple[int, int]], final: bool) -> None:
    p = _plan(tokens)
    cl_code, lit_code = _canonical(p.cl_len), _canonical(p.lit_len)
    dist_code = _canonical(p.dist_len)
    bits.put(1 if final else 0, 1)
    bits.put(2, 2)  # dynamic Huffman
    bits.put(p.hlit - 257, 5)
    bits.put(p.hdist - 1, 5)
    bits.put(p.hclen - 4, 4)
    for sym in _CL_ORDER[:p.hclen]:
        bits.put(p.cl_len[sym], 3)
    for sym, extra, extra_bits in p.runs:
        bits.put(cl_code[sym], p.cl_len[sym])
        if extra_bits:
            bits.put(extra, extra_bits)
    for value, dist in tokens:
        if dist:
            lc = _LENGTH_CODE[value]
            bits.put(lit_code[257 + lc], p.lit_len[257 + lc])
            base, extra_bits = _LENGTHS[lc]
            if extra_bits:
                bits.put(value - base, extra_bits)
            dc = _dist_code(dist)
            bits.put(dist_code[dc], p.dist_len[dc])
            base, extra_bits = _DISTS[dc]
            if extra_bits:
                bits.put(dist - base, extra_bits)
        else:
            bits.put(lit_code[value], p.lit_len[value])
    bits.put(lit_code[256], p.lit_len[256])


def deflate(data: bytes) -> bytes:
    """A raw RFC 1951 stream of `data`."""
    bits = _Bits()
    tokens = _tokens(data)
    if not tokens:
        bits.put(0b011, 3)  # final fixed-Huffman block holding only end-of-block (7 zero bits)
        bits.put(0, 7)
        return bits.flush()
    blocks = _split(tokens)
    for k, block in enumerate(blocks):
        _block(bits, block, final=k == len(blocks) - 1)
    return bits.flush()


@functools.lru_cache(maxsize=16)  # a program run asks once per server shape; tests ask often
def gzip_bytes(data: bytes) -> bytes:
    """An RFC 1952 member: fixed header (no name, mtime 0, OS unknown), deflate, CRC-32, size."""
    trailer = (binascii.crc32(data) & 0xFFFFFFFF).to_bytes(4, "little") + \
        (len(data) & 0xFFFFFFFF).to_bytes(4, "little")
    return HEADER + deflate(data) + trailer
