"""The one git-ref check (components.gitref): what passes is a ref git accepts and a shell or
URL reads as one word."""

from __future__ import annotations

import pytest

from components import gitref


@pytest.mark.parametrize("ref", ["main", "v1.4.2", "feature/login-page", "release-2024_01",
                                 "9f3c2a1b7e44", "a" * gitref.MAX_LENGTH])
def test_tags_branches_and_shas_pass(ref: str) -> None:
    assert gitref.valid(ref)


@pytest.mark.parametrize("ref", [
    "", "a" * (gitref.MAX_LENGTH + 1), "-x", "--upload-pack=x", "/main", ".hidden", "a..b",
    "a b", "a\tb", "a\nb", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "a\x7f", "a'b", 'a"b',
    "a`b", "$(x)", "a;b", "a&b", "a|b", "a<b", "a>b", "(a)", "{a}", "a@{1}", "a/.b",
    "a.lock", "a/", "a.", "a//b",
])
def test_anything_else_fails(ref: str) -> None:
    assert not gitref.valid(ref)
