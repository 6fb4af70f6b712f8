"""Usage errors: exit 2 with one line that says what is wrong, before any network call."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.readiness.harness import check, check_cli


@pytest.mark.parametrize(("argv", "message"), [
    (["--region", "us-east-1"],
     "error: nothing to check: give --instance-id, --asg-name, --target-group-arn or --url"),
    (["--region", "us-esat-1", "--url", "http://127.0.0.1:9/"],
     "error: unknown region 'us-esat-1': use an AWS region code such as us-east-1 or eu-west-1"),
    (["--region", "eu-west-1", "--instance-id", "web-1"],
     "error: --instance-id 'web-1': expected an EC2 instance id like i-0123456789abcdef0"),
    (["--region", "eu-west-1", "--url", "ftp://example.org/"],
     "error: --url 'ftp://example.org/': expected an http:// or https:// URL"),
    (["--region", "eu-west-1", "--url", "http://127.0.0.1:9/", "--timeout", "0"],
     "error: --timeout and --interval must be positive numbers of seconds"),
])
def test_usage_errors(argv: list[str], message: str) -> None:
    run = check(*argv)
    assert (run.code, run.err, run.out) == (2, message + "\n", "")


def test_unreadable_ca_file(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    run = check("--region", "eu-west-1", "--url", "https://127.0.0.1:9/", "--ca-file", str(bad))
    assert run.code == 2 and run.err.startswith(f"error: --ca-file {bad}: not a readable PEM")


def test_missing_option_value_is_argparse_usage_with_exit_2() -> None:
    run = check_cli("--region")
    assert run.code == 2
    assert "error: argument --region: expected one argument" in run.err
    assert "Traceback" not in run.err
