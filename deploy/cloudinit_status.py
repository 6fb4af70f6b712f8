"""What cloud-init is doing on a server, read from text: pure parsing, no I/O.

Two sources, one result (`CloudInit`):
- the output of `PROBE_SCRIPT`, a POSIX sh script run on the server (through SSM Run Command,
  or any transport that can feed a script to `sh -s`, such as ssh): `cloud-init status --long`
  and its exit code, the failing module lines of /var/log/cloud-init.log and the tail of
  /var/log/cloud-init-output.log;
- the EC2 serial console output, for servers without the SSM agent (Debian's AMIs): cloud-init
  writes its stage banners, warnings and the app's setup output there.

Formats follow cloud-init 22.4 (Debian 12) and 23.4+ (Ubuntu 24.04): `status --long` gained
`extended_status`, one-line `detail:`, `errors:` and `recoverable_errors:` lists, and the exit
code 2 for "degraded" (warnings only); 22.4 prints `detail:` then the errors on the next lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOG_TAIL_LINES = 40

# Markers between the probe script's sections; nothing cloud-init prints starts with them.
_MARK = "#webstack-probe "

PROBE_SCRIPT = f"""\
# webstack readiness probe: cloud-init's status, failing modules and output tail.
log="${{CLOUD_INIT_LOG:-/var/log/cloud-init.log}}"
out="${{CLOUD_INIT_OUTPUT_LOG:-/var/log/cloud-init-output.log}}"
run="${{CLOUD_INIT_RUN_DIR:-/run/cloud-init}}"
echo '{_MARK}status'
cloud-init status --long 2>&1
echo "{_MARK}exit $?"
# 23.4+ shows the datasource, not the stage, in "detail:" while running
echo '{_MARK}stage'
sed -n 's/.*"stage": "\\(.*\\)".*/\\1/p' "$run/status.json" 2>/dev/null
echo '{_MARK}failed-modules'
# this boot's failures only: the log keeps every boot, each starting with init-local's banner
awk "/running 'init-local' at/ {{ n = 0 }}
     /Running module .* failed|failed stage / {{ f[n++] = \\$0 }}
     END {{ for (i = 0; i < n; i++) print f[i] }}" "$log" 2>/dev/null | tail -n 20
echo '{_MARK}output-tail'
tail -n {LOG_TAIL_LINES} "$out" 2>/dev/null
exit 0
"""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")
# "[   52.118734] cloud-init[745]: " (journald forwarding to the console) or part of it.
_CONSOLE_PREFIX = re.compile(r"^(?:\[\s*\d+\.\d+\]\s*)?(?:cloud-init\[\d+\]:\s?)?")
_BANNER = re.compile(r"Cloud-init v\. (?P<version>\S+) running '(?P<stage>[^']+)' at ")
_FINISHED = re.compile(r"Cloud-init v\. (?P<version>\S+) finished at ")
_MODULE_FAILED = re.compile(r"Running module (?P<name>[\w-]+) \(.*\) failed")
_STAGE_FAILED = re.compile(r"failed (?:run of )?stage (?P<stage>[\w:-]+)")
_STATUS_KEY = re.compile(r"^(?P<key>[a-z_]+):(?: (?P<value>.*))?$")
_ERROR_TUPLE = re.compile(r"^\('(?P<name>[\w-]+)', ")


@dataclass(frozen=True)
class CloudInit:
    """cloud-init's state on one server, as far as the source could tell.

    `status` is cloud-init's own word ("not started", "running", "done", "error", "disabled")
    or "unknown"; `degraded` means done with warnings only (recoverable errors).
    """

    status: str
    stage: str = ""
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    failed_modules: tuple[str, ...] = ()
    tail: tuple[str, ...] = ()
    source: str = ""
    degraded: bool = False

    @property
    def finished(self) -> bool:
        return self.status in ("done", "error", "disabled")

    @property
    def ok(self) -> bool:
        return self.status == "done" and not self.errors

    def summary(self) -> str:
        """One line for progress reports: "running (modules:final)", "done (degraded)"."""
        extra = self.stage if self.status == "running" and self.stage else ""
        if self.degraded:
            extra = "degraded"
        return f"{self.status} ({extra})" if extra else self.status


def clean(text: str) -> str:
    """Text without ANSI escapes, carriage returns or other control characters (tabs kept)."""
    text = _ANSI.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(c for c in text if c in "\n\t" or c.isprintable())


def tail(text: str, n: int = LOG_TAIL_LINES) -> list[str]:
    """The last `n` non-blank lines of `text`, cleaned and right-stripped."""
    lines = [line.rstrip() for line in clean(text).splitlines()]
    return [line for line in lines if line.strip()][-n:] if n > 0 else []


def _stage_name(stage: str) -> str:
    """status.json and `status --long` say "modules-final"; the banners say "modules:final"."""
    return re.sub(r"^modules-", "modules:", stage.strip())


def failing_modules(log_text: str) -> list[str]:
    """Names of the modules cloud-init reported as failed ("Running module X (...) failed"),
    in order of first failure, each once."""
    names = [m["name"] for m in _MODULE_FAILED.finditer(log_text)]
    return list(dict.fromkeys(names))


def parse_status_long(text: str, exit_code: int | None = None) -> CloudInit:
    """`cloud-init status --long` output (22.4 or 23.4+), and its exit code when known.

    Exit code 1 means error and 2 degraded (23.4+); 22.4 exits 1 on error, else 0.
    """
    fields: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    current = ""
    for raw in clean(text).splitlines():
        line = raw.rstrip()
        m = _STATUS_KEY.match(line)
        if m and not raw.startswith(("\t", " ")):
            current = m["key"]
            value = (m["value"] or "").strip()
            fields[current] = value
            lists.setdefault(current, [])
            continue
        item = line.strip()
        if item.startswith("- "):
            item = item[2:]
        if item and current:
            lists.setdefault(current, []).append(item)
    status = fields.get("status", "unknown") or "unknown"
    if status == "not run":  # 22.4's word for it
        status = "not started"
    detail = fields.get("detail", "")
    errors = [e for e in lists.get("errors", []) if e != "[]"]
    if status == "error" and not errors:
        # 22.4 lists the errors as the lines after "detail:".
        errors = [line for line in lists.get("detail", []) if line]
    warnings = [w for w in lists.get("recoverable_errors", []) if w != "{}"]
    warnings = [w for w in warnings if not re.fullmatch(r"[A-Z]+:", w)]
    detail_lines = [detail, *lists.get("detail", [])]
    stage = next((line.split(":", 1)[1] for line in detail_lines
                  if line.startswith("Running in stage:")), "")
    failed = [m["name"] for e in errors if (m := _ERROR_TUPLE.match(e))]
    degraded = exit_code == 2 or fields.get("extended_status", "").startswith("degraded")
    if exit_code == 1 and status == "done":
        status = "error"
    return CloudInit(status=status, stage=_stage_name(stage), errors=tuple(errors),
                     warnings=tuple(warnings), failed_modules=tuple(dict.fromkeys(failed)),
                     degraded=degraded and status != "error")


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith(_MARK):
            name = line[len(_MARK):].strip()
            current = sections.setdefault(name, [])
        else:
            current.append(line)
    return sections


def parse_probe(stdout: str, source: str) -> CloudInit:
    """The output of PROBE_SCRIPT, whichever transport ran it."""
    sections = _sections(clean(stdout))
    exit_line = next((name for name in sections if name.startswith("exit ")), "")
    code = exit_line.split()[1] if exit_line else ""
    exit_code = int(code) if code.isdigit() else None
    status_text = "\n".join(sections.get("status", []))
    if exit_code == 127 or "status" not in sections:  # no cloud-init, or the script did not run
        first = next((line for line in sections.get("status", []) if line.strip()), "")
        return CloudInit(status="unknown", errors=(first,) if first else (),
                         tail=tuple(tail(stdout)), source=source)
    status = parse_status_long(status_text, exit_code)
    module_lines = "\n".join(sections.get("failed-modules", []))
    failed = (*status.failed_modules, *failing_modules(module_lines))
    stage = status.stage or _stage_name("".join(sections.get("stage", [])))
    return CloudInit(status=status.status, stage=stage, errors=status.errors,
                     warnings=status.warnings, failed_modules=tuple(dict.fromkeys(failed)),
                     tail=tuple(tail("\n".join(sections.get("output-tail", [])))),
                     source=source, degraded=status.degraded)


def _this_boot(lines: list[str]) -> list[str]:
    """The lines from the last boot's first cloud-init stage on (a console keeps old boots)."""
    for first_stage in ("init-local", "init"):
        starts = [i for i, line in enumerate(lines)
                  if (m := _BANNER.search(line)) and m["stage"] == first_stage]
        if starts:
            return lines[starts[-1]:]
    return lines


def _tracebacks(lines: list[str]) -> list[str]:
    """The last line of each Python traceback (the exception), e.g. "OSError: [Errno 28] ..."."""
    found = []
    inside = False
    for line in lines:
        if line.startswith("Traceback (most recent call last):"):
            inside = True
        elif inside and line and not line.startswith((" ", "\t")):
            found.append(line)
            inside = False
    return found


def parse_console(text: str) -> CloudInit:
    """EC2 console output: cloud-init's banners, module failures and tracebacks.

    The console has no exit status: "finished" with a failed module or stage is an error,
    "finished" without is done, a stage banner without "finished" is running.
    """
    lines = [_CONSOLE_PREFIX.sub("", line).rstrip() for line in clean(text).splitlines()]
    lines = _this_boot(lines)
    stage = ""
    finished_at = None
    for i, line in enumerate(lines):
        if m := _BANNER.search(line):
            stage, finished_at = m["stage"], None
        elif _FINISHED.search(line):
            finished_at = i
    body = "\n".join(lines)
    failed = failing_modules(body)
    stage_failures = [f"stage {m['stage']} failed" for m in _STAGE_FAILED.finditer(body)]
    errors = tuple(dict.fromkeys([*stage_failures, *_tracebacks(lines)]))
    shown = lines[: finished_at + 1] if finished_at is not None else lines
    if not stage:
        status = "not started"
    elif finished_at is None:
        status = "running"
    else:
        status = "error" if failed or errors else "done"
    if status == "running" and stage == "modules:final" and stage_failures:
        status = "error"  # the last stage crashed: no "finished" line will come
    return CloudInit(status=status, stage=_stage_name(stage), errors=errors,
                     failed_modules=tuple(failed), tail=tuple(tail("\n".join(shown))),
                     source="console")
