"""The URNs of the repository's stacks are kept: a changed type token, name or parent is a
replacement of real resources (or an orphan) on every deployed stack, unless it comes with an
alias. The sets are recorded in tests/unit/data/urns-<stack>.txt; after a deliberate change
(with aliases, or a note on what it replaces), rewrite them with WEBSTACK_WRITE_URNS=1 and
review the diff."""

from __future__ import annotations

import os

import pytest

from devtools.mockrun import PROJECT_DIR, run_program, stack_config

DATA = PROJECT_DIR / "tests" / "unit" / "data"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_stacks_urns_are_the_recorded_ones(aws_env_module, stack):
    run = run_program(stack, stack_config(stack))
    assert run.error is None, run.error
    urns = sorted(r.urn for r in run.resources)
    path = DATA / f"urns-{stack}.txt"
    if os.environ.get("WEBSTACK_WRITE_URNS") == "1":
        path.write_text("".join(f"{u}\n" for u in urns), encoding="utf-8")
        pytest.fail(f"{path} written: review the diff and commit it")
    recorded = path.read_text(encoding="utf-8").split()
    assert len(urns) >= 30
    assert urns == recorded, {"added": sorted(set(urns) - set(recorded)),
                              "gone": sorted(set(recorded) - set(urns))}
