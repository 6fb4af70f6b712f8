"""Our gzip encoder: any inflater reads it, and its bytes depend on the input alone."""

from __future__ import annotations

import gzip
import hashlib
import random
import zlib

import pytest

from components import deflate

PINNED = "4a15f5799ee7ea2838d06e74f2e157649a19a445bc8d2e1cf583e4c58a4212b4"


def _corpus() -> dict[str, bytes]:
    rng = random.Random(20261201)
    words = [bytes(rng.choices(b"abcdefghij -_/{}\n", k=rng.randint(2, 12))) for _ in range(300)]
    text = b" ".join(rng.choice(words) for _ in range(9000))
    return {
        "empty": b"",
        "one": b"x",
        "two": b"xy",
        "random": rng.randbytes(40000),  # incompressible: matches are rare, literals dominate
        "zeros": b"\0" * 70000,  # runs past 258 and past the 32 KiB window
        "text": text,
        "far": text[:20000] + rng.randbytes(30000) + text[:20000],  # a repeat beyond the window
        "all-bytes": bytes(range(256)) * 3,
    }


@pytest.mark.parametrize("name", list(_corpus()))
def test_zlib_inflates_it_to_the_input(name: str) -> None:
    data = _corpus()[name]
    assert gzip.decompress(deflate.gzip_bytes(data)) == data
    assert zlib.decompress(deflate.deflate(data), wbits=-15) == data


def test_text_compresses_about_as_well_as_zlib_best() -> None:
    data = _corpus()["text"]
    ours, theirs = len(deflate.gzip_bytes(data)), len(gzip.compress(data, 9, mtime=0))
    assert ours <= theirs * 1.03, (ours, theirs)


def test_header_names_no_os_no_time_no_file() -> None:
    out = deflate.gzip_bytes(b"hello")
    assert out[:10] == bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 2, 255])
    assert out[-4:] == (5).to_bytes(4, "little")


def test_output_is_pinned_byte_for_byte() -> None:
    """The same input gives these bytes on every machine: a change of encoder output would
    replace every user's servers, so it must be deliberate (update the digest with intent)."""
    digest = hashlib.sha256(b"".join(deflate.gzip_bytes(v) for v in _corpus().values()))
    assert digest.hexdigest() == PINNED


def test_no_zlib_compressor_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("zlib's compressor was called")
    for name in ("compress", "compressobj"):
        monkeypatch.setattr(zlib, name, refuse)
    monkeypatch.setattr(gzip, "compress", refuse)
    data = _corpus()["text"]
    assert gzip.decompress(deflate.gzip_bytes(data)) == data


def test_code_lengths_are_limited_and_complete() -> None:
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])  # Fibonacci weights: plain Huffman would go 29 deep
    lengths = deflate._huffman_lengths(fib, 15)
    assert max(lengths) == 15
    assert sum(2 ** (15 - n) for n in lengths if n) == 2 ** 15  # Kraft: a complete code
    symbols = b"".join(bytes([i]) * f for i, f in enumerate(fib[:20]))
    data = bytes(random.Random(5).sample(symbols, len(symbols)))
    assert zlib.decompress(deflate.deflate(data), wbits=-15) == data
