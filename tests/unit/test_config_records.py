"""Settings as records: the docs show each record's constraints, every problem is reported in
one error, and the rules the renderer used to enforce one at a time are config's now."""

from __future__ import annotations

import json
import re

import pytest

from components import config
from components.config.reader import plain_word_problem
from devtools.mockrun import stack_config
from tests.bootstrap.test_bootstrap_hostile import HOSTILE

REGIONS = ("us-east-1",)
GIT_APP = {"webstack:appRepo": "https://git.example.com/acme/shop.git"}
PLAIN = "(at most 255 letters, digits and . _ ~ / : @ + = , -, not starting with - or ~)"


def problems(**overrides: str) -> list[str]:
    raw = stack_config("dev", overrides)
    with pytest.raises(config.ConfigError) as err:
        config.parse(raw, project="webstack", stack="dev", region=raw.get("aws:region"),
                     supported_regions=REGIONS)
    return err.value.problems


def doc_rows() -> dict[str, str]:
    rows = config.markdown_table().splitlines()[2:]
    return {re.match(r"\| `(\w+)`", row).group(1): row for row in rows}  # type: ignore[union-attr]


@pytest.mark.parametrize("setting", config.SETTINGS, ids=lambda s: s.key)
def test_each_doc_line_shows_the_records_constraints(setting: config.Setting) -> None:
    row = doc_rows()[setting.key]
    assert setting.description in row
    if setting.type == "integer":
        assert setting.choices or (setting.low is not None and setting.high is not None)
    if setting.choices:
        assert "One of: " + ", ".join(map(str, setting.choices)) + "." in row
    elif setting.low is not None:
        assert f"Range: {setting.low}-{setting.high}." in row
    if setting.valid:
        assert setting.form and f"Form: {setting.form}." in row
    assert config.project_schema()[setting.key]["description"] in row
    # written once: the description itself repeats no bound, choice list or form
    assert setting.low is None or f"{setting.low}-{setting.high}" not in setting.description
    assert not setting.choices or ", ".join(map(str, setting.choices)) not in setting.description
    assert not setting.form or setting.form not in setting.description


@pytest.mark.parametrize("setting", [s for s in config.SETTINGS if s.type == "integer"],
                         ids=lambda s: s.key)
def test_integer_checks_are_the_documented_ones(setting: config.Setting) -> None:
    allowed = setting.choices or (setting.low, setting.high)
    below = min(allowed) - 1  # type: ignore[type-var]
    above = max(allowed) + 1  # type: ignore[type-var]
    for value in (below, above):
        (problem,) = problems(**{setting.full_key: str(value)})
        assert problem == f"{setting.full_key} = '{value}': expected {setting.expected}"
    for value in allowed:
        raw = stack_config("dev", {setting.full_key: str(value)})
        if setting.key in ("serverMinCount", "serverMaxCount"):
            raw["webstack:serverCount"] = str(value or 1)
        if setting.key == "databaseStorageGib":  # its ceiling must be 10% above it, or 0
            raw["webstack:databaseMaxStorageGib"] = "0"
        cfg = config.parse(raw, project="webstack", stack="dev", region="us-east-1",
                           supported_regions=REGIONS)
        assert cfg is not None


def test_choices_are_checked_as_documented() -> None:
    for setting in (s for s in config.SETTINGS if s.choices and s.type == "string"):
        (problem,) = problems(**{setting.full_key: "other"})
        assert problem == f"{setting.full_key} = 'other': expected one of " + ", ".join(
            map(str, setting.choices))


def test_full_key_only_names_declared_settings() -> None:
    assert config.full_key("serverVcpus") == "webstack:serverVcpus"
    with pytest.raises(KeyError):
        config.full_key("serverCpus")


def test_independent_problems_in_every_section_are_reported_together() -> None:
    bad = {
        "webstack:appName": "www-data",  # app: reserved account (was the renderer's)
        "webstack:appPath": "src",  # app: a path with the bundled app (was the renderer's)
        "webstack:appWsgi": "_app:application",  # app: not a plain word (was the renderer's)
        "webstack:appWorkers": "65",  # app: bounds
        "webstack:serverArch": "aarch64",  # server: choices
        "webstack:scalingCpuTarget": "95",  # scaling
        "webstack:networkAzCount": "7",  # network
        "webstack:adminCidrs": '["0.0.0.0/0"]',  # access
        "webstack:domainZone": "localhost",  # domain: not a zone
        "webstack:tlsEmail": "ops@",  # tls
        "webstack:aptMirror": "ftp://mirror",  # sources
        "webstack:readinessIntervalSeconds": "0",  # readiness
        "webstack:logRetentionDays": "10",  # monitoring
        "webstack:tags": '["aws:x=y"]',  # tags
        "webstack:serverCpus": "4",  # unknown key
    }
    found = problems(**bad)
    assert len(found) == len(bad), "\n".join(found)
    for key in bad:
        assert sum(key in p for p in found) >= 1, key


@pytest.mark.parametrize(("raw", "message"), [
    ({"webstack:appName": "www-data"}, "webstack:appName = 'www-data': expected a name"),
    ({"webstack:appName": "root"}, "webstack:appName = 'root'"),
    ({"webstack:appPath": "src"}, "webstack:appPath = 'src': expected a directory inside "
                                  "appSource"),
    ({"webstack:appSource": "no/such/dir"}, "webstack:appSource = 'no/such/dir': expected a "
                                            "directory"),
    ({"webstack:appSource": "examples", "webstack:appRepo": "https://git.example.com/a/b.git"},
     "webstack:appSource and webstack:appRepo are both set"),
    ({"webstack:appSource": "examples"}, "webstack:appSource 'examples' has no requirements.txt"),
    ({"webstack:appEnv": '["APP_DATA_DIR=/tmp"]'}, "webstack:appEnv/appSecrets set APP_DATA_DIR"),
])
def test_settings_the_server_cannot_honour_are_refused(raw: dict[str, str], message: str) -> None:
    (problem,) = problems(**raw)
    assert problem.startswith(message)


@pytest.mark.parametrize(("key", "value", "form"), [
    ("appWsgi", "_app:application", "module:callable"),
    ("appWsgi", "a" * 250 + ":" + "b" * 10, "module:callable"),
    ("appStaticDir", "-static", "a relative path without '..', e.g. static"),
    ("appRequirements", ".reqs/prod.txt", "a relative file path without '..'"),
    ("appHealthPath", "/" + "h" * 255, "a URL path such as /healthz"),
    ("appStaticUrl", "/" + "s" * 255 + "/", "a URL path ending in '/'"),
    ("appPath", "_site", "a relative path without '..', e.g. src/app"),
])
def test_words_that_reach_nginx_or_systemd_must_be_plain(key: str, value: str, form: str) -> None:
    overrides = {f"webstack:{key}": value, **(GIT_APP if key == "appPath" else {})}
    (problem,) = problems(**overrides)
    assert problem.startswith(f"webstack:{key} = ") and f": expected {form}" in problem
    assert problem.endswith(PLAIN)


@pytest.mark.parametrize("value", HOSTILE)
def test_nginx_and_systemd_words_refuse_anything_not_plain(value: str) -> None:
    problem = plain_word_problem(value, "appStaticUrl", "a URL path")
    assert problem and re.match(r"webstack:appStaticUrl = .*: expected a URL path", problem,
                                re.S)


@pytest.mark.parametrize("value", [*HOSTILE, "app", "a-1", "x" * 63, "-a", "a-"])
def test_names_config_accepts_are_plain_words(value: str) -> None:
    """appName and DNS names carry no separate plain-word check: their forms imply it."""
    zone = {"webstack:domainZone": "example.com"}
    for overrides in ({"webstack:appName": value},
                      {**zone, "webstack:domainHostname": f"{value}.example.com"},
                      {**zone, "webstack:domainHostname": "app.example.com",
                       "webstack:domainExtraNames": json.dumps([f"{value}.example.com"])}):
        raw = stack_config("dev", overrides)
        try:
            cfg = config.parse(raw, project="webstack", stack="dev", region="us-east-1",
                               supported_regions=REGIONS)
        except config.ConfigError:
            continue
        for word in (cfg.app.name, *cfg.domain.names):
            assert plain_word_problem(word, "x", "y") is None, word
