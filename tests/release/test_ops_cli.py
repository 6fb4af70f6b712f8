"""`webstack run`, `releases` and `rollback` through the CLI for real, against the loopback
release engine (see stack.py): the CLI's transport runs each shell line it would send through
SSM with bash, as root would on the server, and the program path is the one under the stack's
root. The tests run in order on one stack serving A, then B."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import ops
from tests.release.stack import (
    REPO_URL,
    SECRET,
    Stack,
    dump,
    loopback_stack,
    require_tools,
    rev,
)
from tests.variants import make_cfg

pytestmark = pytest.mark.realtools

SERVER = "i-0loopback0000001"
GREETING = "hello from appEnv"


class Bash:
    """The transport: the script as one bash command line, in the stack's environment."""

    def __init__(self, stack: Stack) -> None:
        self.stack, self.scripts = stack, []

    def run(self, instance_id: str, script: str) -> tuple[int, str, str]:
        assert instance_id == SERVER
        self.scripts.append(script)
        proc = subprocess.run(["bash", "-c", script], env=self.stack.env, capture_output=True,
                              text=True, timeout=300, check=False)
        return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_tools("nginx", "git", "flock")
    cfg = make_cfg({"webstack:appName": "shop", "webstack:appRepo": REPO_URL,
                    "webstack:appRef": "A", "webstack:appReleasesKept": "3",
                    "webstack:appEnv": json.dumps([f"GREETING={GREETING}"]),
                    "webstack:appSecrets": json.dumps(["DB_PASSWORD=/webstack/dev/shop/db"])})
    with loopback_stack(cfg, tmp_path_factory.mktemp("ops-cli")) as served:
        for tag in ("A", "B"):
            result, _ = served.release(tag)
            assert result.returncode == 0, result.stdout + result.stderr + dump(served)
        yield served


def webstack(stack: Stack, tmp_path: Path, *argv: str) -> tuple[int, str, str, Bash]:
    saved = tmp_path / "outputs.json"
    saved.write_text(json.dumps({
        "region": "us-east-1", "appName": "shop", "instanceIds": [SERVER],
        "url": f"http://127.0.0.1:{stack.port}", "releaseRefParameter": "/webstack/dev/shop/ref",
        "logGroupNames": [], "runLogGroupName": "/webstack/dev/shop/run"}))
    transport, out, err = Bash(stack), io.StringIO(), io.StringIO()
    code = ops.main(["--outputs", str(saved), *argv], out=out, err=err, transport=transport,
                    root=stack.paths.root)
    return code, out.getvalue(), err.getvalue(), transport


def ids(stack: Stack) -> dict[str, str]:
    return {tag: rev(stack.origin, tag)[:12] for tag in ("A", "B")}


def test_releases_lists_the_kept_releases_with_the_current_one_marked(
        stack: Stack, tmp_path: Path) -> None:
    code, out, err, transport = webstack(stack, tmp_path, "releases")
    assert (code, err) == (0, "")
    assert transport.scripts == [f"{stack.paths.lib}/release --list"]
    lines = out.splitlines()
    assert lines[:2] == [f"{SERVER}: 2 release(s)", "    ID            RELEASED              REF"]
    a, b = ids(stack)["A"], ids(stack)["B"]
    assert [line.split()[:2] for line in lines[2:]] == [["*", b], [a, lines[3].split()[1]]]
    assert lines[3].split()[2] == rev(stack.origin, "A")


def test_run_runs_once_in_the_serving_release_and_returns_its_exit_code(
        stack: Stack, tmp_path: Path) -> None:
    code_line = ("import os, sys; print(os.environ['GREETING'], os.getcwd(), sys.argv[1:]); "
                 "print('has secret', 'DB_PASSWORD' in os.environ, file=sys.stderr); "
                 "sys.exit(3)")
    code, out, err, transport = webstack(stack, tmp_path, "run", "--", "python", "-c",
                                         code_line, "a b", "$(touch /tmp/x)")
    assert code == 3, err  # the command's own exit code
    assert out.splitlines() == [f"{GREETING} {stack.current() / 'src'} "
                                "['a b', '$(touch /tmp/x)']"]  # each argument one word
    assert err == "has secret True\n"
    assert SECRET not in transport.scripts[0]  # the command line carries no secret


def test_rollback_goes_back_to_a_and_says_the_pointer_still_names_b(
        stack: Stack, tmp_path: Path) -> None:
    a = ids(stack)["A"]
    code, out, err, _ = webstack(stack, tmp_path, "rollback")
    assert (code, err) == (0, ""), out + dump(stack)
    assert stack.get("/") == ("200", "release A") and stack.current().name == a
    sha = rev(stack.origin, "A")
    assert f"rollback: {SERVER}: release: serving {sha} ({a}) as " in out
    assert out.splitlines()[-1] == (
        "warning: the release pointer (/webstack/dev/shop/ref) is unchanged: the next "
        "`pulumi up`, and any server that starts (a new or replaced one), deploys its release "
        "again. To stay on this one, pin it in the stack's config: pulumi config set "
        f"webstack:appRef {sha}")


def test_rollback_to_an_unknown_release_fails_naming_the_kept_ones(
        stack: Stack, tmp_path: Path) -> None:
    a, b = ids(stack)["A"], ids(stack)["B"]
    code, _, err, _ = webstack(stack, tmp_path, "rollback", "nonsense")
    assert code == 1
    assert err == (f"FAILED: rollback stopped at server 1/1, {SERVER}: the rollback ended "
                   f"Failed (exit 2): release: FAILED: 'nonsense' is not a kept release: "
                   f"expected one of {a} {b}.\n")
    assert stack.current().name == a


def test_rollback_to_a_named_release_goes_forward_again(stack: Stack, tmp_path: Path) -> None:
    b = ids(stack)["B"]
    code, _, err, transport = webstack(stack, tmp_path, "rollback", b)
    assert (code, err) == (0, "")
    assert transport.scripts == [f"{stack.paths.lib}/release --rollback {b}"]
    assert stack.get("/") == ("200", "release B with dep 1.0")
    code, out, _, _ = webstack(stack, tmp_path, "releases")
    assert code == 0 and out.splitlines()[2].split()[:2] == ["*", b]
