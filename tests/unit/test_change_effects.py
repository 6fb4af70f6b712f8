"""The README's table of what a settings change does to the servers is what the program does:
each row is run before and after the change under mocks, and devtools/provider.py says, from the
inputs that force replacement, whether the servers are left alone, get a release, are updated
in place, rolled (a fleet's instance refresh), replaced or built anew."""

from __future__ import annotations

import re
import shutil

import pytest

from components.config import SAMPLE_APP_DIR
from devtools.mockrun import PROJECT_DIR, MockRun, run_program, stack_config
from devtools.provider import server_effect
from tests.cases import ED25519_KEY, arr

README = PROJECT_DIR / "README.md"
GIT = {"webstack:appRepo": "https://git.example.com/acme/shop.git", "webstack:appRef": "v1.0.0",
       "webstack:appSecretValues": arr("API_KEY=first-value")}
SHAPES = {"single server": ("dev", {**GIT, "webstack:networkCreateVpc": "true"}),
          "fleet": ("prod", {**GIT, "webstack:serverMaxCount": "4"})}
SECRET = ["webstack:appSecretValues"]
DIGESTS = ("sha256:" + "1" * 64, "sha256:" + "2" * 64)

# README row label -> the change made on top of each shape
ROWS: dict[str, dict[str, str]] = {
    "`appRef`": {"webstack:appRef": "v1.1.0"},
    "`appEnv`, `appSecrets`, `appPreStart`, `appWorkers`, `appTimeoutSeconds`, any other "
    "`app*` or `tls*` setting the server reads": {"webstack:appEnv": arr("COLOR=blue")},
    "`appSecretValues` (a value)": {"webstack:appSecretValues": arr("API_KEY=second-value")},
    "`serverImage`": {"webstack:serverImage": "ami-0fedcba9876543210"},
    "`serverInstanceType`, `serverVcpus`, `serverMemoryGib`": {
        "webstack:serverInstanceType": "m7i.large"},
    "`serverDiskGib`": {"webstack:serverDiskGib": "64"},
    "`sshPublicKey`": {"webstack:sshPublicKey": ED25519_KEY},
    "`serverMinCount`, `serverMaxCount`, `serverCount` (within a group)": {
        "webstack:serverMinCount": "2", "webstack:serverMaxCount": "6"},
    "`alertEmails`, `alarm*`, `logRetentionDays`, `tags`": {
        "webstack:alertEmails": arr("ops@example.com"), "webstack:logRetentionDays": "90"},
    "`networkCidr`": {"webstack:networkCidr": "10.43.0.0/16"},
}


def _readme_rows() -> dict[str, tuple[str, str]]:
    return {row: cells for row, cells in _table().items() if row in ROWS}


def _table() -> dict[str, tuple[str, str]]:
    """Every row of the README's table (none without its marker: the tests below fail)."""
    text = README.read_text(encoding="utf-8").partition("<!-- change-effects -->")[2]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3:
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def _word(cell: str) -> str:
    """The effect a README cell names: its bold first words, or '-' for not applicable."""
    match = re.match(r"\*\*([a-z ]+)\*\*", cell)
    return match.group(1) if match else "-"


def _run(stack: str, overrides: dict[str, str]) -> MockRun:
    run = run_program(stack, stack_config(stack, overrides), secret_keys=SECRET)
    if run.error is not None:
        raise run.error
    return run


@pytest.fixture(scope="module")
def baselines(aws_env_module) -> dict[str, MockRun]:
    return {shape: _run(*spec) for shape, spec in SHAPES.items()}


def test_the_readme_has_every_row():
    assert set(_readme_rows()) == set(ROWS)


def _cases() -> list[tuple[str, str, str]]:
    """(row, shape, the effect the README names) wherever it names one."""
    rows = _readme_rows()
    return [(row, shape, _word(rows[row][i])) for row in ROWS if row in rows
            for i, shape in enumerate(SHAPES) if _word(rows[row][i]) != "-"]


@pytest.mark.parametrize(("row", "shape", "documented"), _cases())
def test_the_readme_says_what_the_change_does(baselines, row, shape, documented):
    stack, base = SHAPES[shape]
    effect = server_effect(baselines[shape], _run(stack, {**base, **ROWS[row]}))
    assert effect == documented, f"{row} on a {shape}: the program does {effect!r}"


def test_new_code_in_appsource_is_a_release_on_either_shape(aws_env_module, tmp_path):
    """The README's `appSource` row: new code (not a setting) changes only the bundle, its
    pointer and the rollout. Run on bundle stacks, since the shapes above are git apps."""
    row = "new code in `appSource`"
    assert _word(_table()[row][0]) == _word(_table()[row][1]) == "release"
    src = tmp_path / "app"
    shutil.copytree(SAMPLE_APP_DIR, src, ignore=shutil.ignore_patterns("__pycache__"))
    for stack in ("dev", "prod"):
        base = {"webstack:appSource": str(src)}
        before = _run(stack, base)
        (src / "app.py").write_text((src / "app.py").read_text() + f"# {stack}\n")
        assert server_effect(before, _run(stack, base)) == "release", stack


def test_a_new_image_is_a_release_on_either_shape(aws_env_module, tmp_path):
    """The README's image row: a new digest of appImage (a moved tag resolves to one), or new
    code built into the stack's repository, changes only the pointer and the rollout."""
    row = "a new image (`appRuntime: docker`)"
    assert _word(_table()[row][0]) == _word(_table()[row][1]) == "release"
    src = tmp_path / "app"
    shutil.copytree(PROJECT_DIR / "examples" / "docker-app", src,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for stack in ("dev", "prod"):
        named = {"webstack:appRuntime": "docker"}
        before = _run(stack, {**named, "webstack:appImage": f"ghcr.io/acme/shop@{DIGESTS[0]}"})
        after = _run(stack, {**named, "webstack:appImage": f"ghcr.io/acme/shop@{DIGESTS[1]}"})
        assert server_effect(before, after) == "release", stack
        built = {**named, "webstack:appSource": str(src)}
        before = _run(stack, built)
        (src / "app.py").write_text((src / "app.py").read_text() + f"# {stack}\n")
        assert server_effect(before, _run(stack, built)) == "release", stack

