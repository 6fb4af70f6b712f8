"""Parsing cloud-init's status, console and logs, on fixtures from cloud-init 22.4 (Debian 12;
the status-22.4-* files were printed by the real 22.4.2 `status --long` code) and 24.4."""

from __future__ import annotations

import pytest
from moto.ec2.responses.general import SAMPLE_CONSOLE_OUTPUT

from deploy.cloudinit_status import (
    clean,
    failing_modules,
    parse_console,
    parse_probe,
    parse_status_long,
    tail,
)
from tests.readiness.harness import DATA, FakeServer

RUNTIME_ERROR = ("('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted "
                 "commands'))")


def read(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize(("fixture", "code", "status", "stage"), [
    ("status-22.4-running.txt", 0, "running", "modules:final"),
    ("status-22.4-done.txt", 0, "done", ""),
    ("status-24.4-running.txt", 0, "running", ""),  # 23.4+ shows the datasource instead
])
def test_status_long_running_and_done(fixture: str, code: int, status: str, stage: str) -> None:
    ci = parse_status_long(read(fixture), code)
    assert (ci.status, ci.stage, ci.errors, ci.failed_modules) == (status, stage, (), ())
    assert ci.ok == (status == "done")


@pytest.mark.parametrize("fixture", ["status-22.4-error.txt", "status-24.4-error.txt"])
def test_status_long_error_names_the_module_and_the_exception(fixture: str) -> None:
    ci = parse_status_long(read(fixture), 1)
    assert ci.status == "error" and not ci.ok and ci.finished
    assert ci.errors == (RUNTIME_ERROR,)
    assert ci.failed_modules == ("scripts_user",)


def test_status_long_24_lists_recoverable_errors_as_warnings() -> None:
    ci = parse_status_long(read("status-24.4-error.txt"), 1)
    assert ci.warnings[0] == ("Failed to run module scripts_user "
                              "(scripts in /var/lib/cloud/instance/scripts)")
    assert len(ci.warnings) == 2  # the "WARNING:" heading is not one


def test_degraded_is_done_with_warnings() -> None:
    ci = parse_status_long(read("status-24.4-degraded.txt"), 2)
    assert ci.ok and ci.degraded and ci.summary() == "done (degraded)"
    assert ci.warnings == ("Deprecated cloud-config provided: chpasswd.list:  Deprecated in "
                           "version 22.2. Use **users** instead.",)


def test_console_while_the_final_stage_runs() -> None:
    ci = parse_console(read("console-debian12-running.txt"))
    assert ci.summary() == "running (modules:final)" and not ci.finished
    assert ci.tail[-1] == "Collecting gunicorn==23.0.0"
    assert not any("\x1b" in line for line in ci.tail)


def test_console_failure_gives_module_and_the_output_before_finished() -> None:
    ci = parse_console(read("console-debian12-failed.txt"))
    assert ci.status == "error" and ci.failed_modules == ("scripts_user",)
    assert "ERROR: No matching distribution found for flask==9.9.9" in ci.tail
    # the tail stops at cloud-init's last line, not at the login prompt after it
    assert ci.tail[-1].startswith("Cloud-init v. 22.4.2 finished at")
    assert ci.tail[0].startswith("Cloud-init v. 22.4.2 running 'init-local'")  # no kernel lines


def test_console_done() -> None:
    ci = parse_console(read("console-debian12-done.txt"))
    assert ci.ok and ci.failed_modules == () and ci.stage == "modules:final"


def test_console_reads_the_last_boot_only() -> None:
    text = read("console-debian12-reboot.txt")
    assert failing_modules(text) == ["scripts_user"]  # the first boot failed...
    ci = parse_console(text)
    assert ci.ok and ci.failed_modules == ()  # ...the one that counts did not


def test_console_stage_crash_without_finished_line_is_an_error() -> None:
    ci = parse_console(read("console-ubuntu24-stage-crash.txt"))
    assert ci.status == "error"
    assert ci.errors == ("stage modules-final failed",
                         "OSError: [Errno 28] No space left on device")


@pytest.mark.parametrize("text", ["", SAMPLE_CONSOLE_OUTPUT])
def test_console_before_cloud_init(text: str) -> None:
    assert parse_console(text).status == "not started"


def test_failing_modules_in_order_once_each() -> None:
    assert failing_modules(read("cloud-init-22.4.log")) == [
        "package-update-upgrade-install", "scripts_user"]
    assert failing_modules(read("console-debian12-done.txt")) == []


def test_tail_and_clean() -> None:
    text = "one\r\n\n  \ntwo\x07 \x1b[0;32mgreen\x1b[0m\nthree\n"
    assert tail(text, 2) == ["two green", "three"]
    assert tail(text, 0) == []
    assert clean("a\tb\x00c\rd") == "a\tbc\nd"


def test_probe_script_on_a_failed_22_4_server(fake_server: FakeServer) -> None:
    previous_boot = ("2025-11-20 09:00:00,000 - util.py[DEBUG]: Cloud-init v. 22.4.2 running "
                     "'init-local' at Thu, 20 Nov 2025 09:00:00 +0000. Up 5.00 seconds.\n"
                     "2025-11-20 09:00:09,000 - util.py[WARNING]: Running module ntp (<module "
                     "'cloudinit.config.cc_ntp'>) failed\n")
    output = "".join(f"line {i}\n" for i in range(100)) + "webstack-setup: pip failed\n"
    fake_server.boot("status-22.4-error.txt", 1, log=previous_boot + read("cloud-init-22.4.log"),
                     output=output)
    ci = parse_probe(fake_server.probe_stdout(), "ssh")
    assert ci.status == "error" and ci.errors == (RUNTIME_ERROR,)
    # this boot's failures only (not ntp), the status's module first
    assert ci.failed_modules == ("scripts_user", "package-update-upgrade-install")
    assert len(ci.tail) == 40 and ci.tail[-1] == "webstack-setup: pip failed"


def test_probe_script_reads_the_stage_from_status_json(fake_server: FakeServer) -> None:
    fake_server.boot("status-24.4-running.txt", 0, stage="modules-final")
    ci = parse_probe(fake_server.probe_stdout(), "ssm")
    assert ci.summary() == "running (modules:final)" and ci.source == "ssm"


def test_probe_without_cloud_init() -> None:
    stdout = ("#webstack-probe status\nsh: 5: cloud-init: not found\n#webstack-probe exit 127\n"
              "#webstack-probe stage\n#webstack-probe failed-modules\n"
              "#webstack-probe output-tail\n")
    ci = parse_probe(stdout, "ssh")
    assert ci.status == "unknown" and ci.errors == ("sh: 5: cloud-init: not found",)
