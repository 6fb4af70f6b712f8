"""The config model: every bad value is named with the expected form, all problems at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components import config
from devtools.mockrun import stack_config
from tests.cases import BAD_INPUTS, SECRET_VALUES, arr

REGIONS = ("us-east-1", "eu-west-1")
ROOT = Path(__file__).resolve().parents[2]


def parse(stack: str = "dev", **overrides: str) -> config.StackConfig:
    raw = stack_config(stack, overrides)
    return config.parse(raw, project="webstack", stack=stack, region=raw.get("aws:region"),
                        supported_regions=REGIONS)


@pytest.mark.parametrize(("case", "overrides", "expected"), BAD_INPUTS,
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_named_with_expected_form(case, overrides, expected):
    raw = {**stack_config("dev"), **overrides}
    with pytest.raises(config.ConfigError) as err:
        config.parse(raw, project="webstack", stack="dev", region=raw.get("aws:region"),
                     supported_regions=REGIONS)
    message = str(err.value)
    for text in expected:
        assert text in message, f"{case}: {text!r} not in:\n{message}"


def test_secret_values_never_appear_in_messages():
    for case, overrides, _ in BAD_INPUTS:
        raw = {**stack_config("dev"), **overrides}
        for secret in (frozenset(), frozenset({"webstack:appSecretValues"})):
            try:
                config.parse(raw, project="webstack", stack="dev", region=raw.get("aws:region"),
                             supported_regions=REGIONS, secret_keys=secret)
            except config.ConfigError as err:
                assert not any(v in str(err) for v in SECRET_VALUES), case


def test_stored_secrets_become_parameters_under_the_stack_path():
    raw = {**stack_config("dev"), "webstack:appSecretValues": arr("API_KEY=s3cr3t=x"),
           "webstack:appSecrets": arr("DB=/shared/db")}
    cfg = config.parse(raw, project="webstack", stack="dev", region="us-east-1",
                       supported_regions=REGIONS,
                       secret_keys=frozenset({"webstack:appSecretValues"}))
    assert cfg.app.secrets == {"DB": "/shared/db",
                               "API_KEY": "/webstack/dev/hello/secrets/API_KEY"}
    assert cfg.app.stored_secrets == ("API_KEY",)
    assert "s3cr3t" not in repr(cfg)
    assert config.stored_secret_values(["API_KEY=s3cr3t=x"]) == {"API_KEY": "s3cr3t=x"}


def test_enough_distinct_bad_inputs():
    assert len({c[0] for c in BAD_INPUTS}) >= 30
    assert len({json.dumps(c[1], sort_keys=True) for c in BAD_INPUTS}) == len(BAD_INPUTS)


def test_every_problem_reported_in_one_error():
    raw = {**stack_config("dev"), "webstack:serverVcpus": "0", "webstack:serverOs": "win",
           "webstack:adminCidrs": arr("0.0.0.0/0"), "webstack:appWsgi": "x"}
    with pytest.raises(config.ConfigError) as err:
        config.parse(raw, project="webstack", stack="dev", region="us-east-1",
                     supported_regions=REGIONS)
    assert len(err.value.problems) == 4
    assert str(err.value).startswith("4 configuration problem(s):")


def test_missing_region_is_explained():
    with pytest.raises(config.ConfigError, match=r"aws:region is not set.*pulumi config set"):
        config.parse({}, project="webstack", stack="x", region=None, supported_regions=REGIONS)


def test_defaults_alone_are_valid_and_match_settings():
    cfg = config.parse({}, project="webstack", stack="x", region="us-east-1",
                       supported_regions=REGIONS)
    assert cfg.app.name == config.SETTINGS_BY_KEY["appName"].default
    assert cfg.server.count == 1 and not cfg.load_balanced and not cfg.https
    assert cfg.access.admin_cidrs == ()  # no SSH by default


def test_stack_files_parse():
    dev, prod = parse("dev"), parse("prod")
    assert dev.server.count == 1 and not dev.load_balanced
    assert prod.server.count == 2 and prod.load_balanced and prod.tls.mode == "acm"
    assert prod.domain.names == ("app.example.com", "www.example.com")
    assert dev.app.env == {"APP_GREETING": "hello from dev"}


def test_values_are_normalised():
    cfg = parse(**{"webstack:domainZone": "Example.COM.",
                   "webstack:domainHostname": "App.Example.com."})
    assert (cfg.domain.zone, cfg.domain.hostname) == ("example.com", "app.example.com")


def test_ca_file_read_as_pem(tmp_path):
    pem = ("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0==\n-----END CERTIFICATE-----\n")
    (tmp_path / "corp.pem").write_text("junk before\n" + pem)
    raw = {**stack_config("dev"), "webstack:extraCaCertFiles": arr("corp.pem")}
    cfg = config.parse(raw, project="webstack", stack="dev", region="us-east-1",
                       supported_regions=REGIONS, base_dir=tmp_path)
    assert cfg.sources.extra_ca_certs == (pem,)


def test_standard_tags_cannot_be_overridden():
    cfg = parse(**{"webstack:tags": arr("Team=web")})
    assert cfg.tags["Team"] == "web"
    assert cfg.tags["webstack:stack"] == "dev" and cfg.tags["ManagedBy"] == "pulumi"


def test_pulumi_yaml_declares_every_setting():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == {s.key for s in config.SETTINGS}
    for s in config.SETTINGS:
        entry = declared[s.key]
        assert entry["type"] == s.type and entry["default"] == s.default
        assert entry["description"]


def test_generated_docs_are_current():
    import scripts.docs as docs

    assert docs.stale() == []
