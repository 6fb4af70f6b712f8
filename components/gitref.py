"""The one check of a git ref's form (tag, branch or commit SHA), for `appRef` and the
rollout's `--ref`: pure and stdlib only, so the Pulumi program and the deploy tools share it.

The rule is git's own (`git check-ref-format`) plus what a shell or a URL would read as more
than a word: a ref that passes is safe as one argument anywhere it goes.
"""

from __future__ import annotations

import re

MAX_LENGTH = 200
EXPECTED = ("a git tag, branch or commit SHA (no spaces, '..', shell or control characters; "
            "not starting with '-')")
_BAD = re.compile(r"(^[-/.])|(\.\.)|([\s~^:?*\[\\\x00-\x1f\x7f'\"`$;&|<>(){}])|(@\{)|"
                  r"(/\.)|(\.lock$)|(/$)|(\.$)|(//)")


def valid(ref: str) -> bool:
    """`ref` is a non-empty git ref of at most MAX_LENGTH characters; else say EXPECTED."""
    return bool(ref) and len(ref) <= MAX_LENGTH and not _BAD.search(ref)
