"""What each waiting thing of the program waits for, on create and on update, and the test that
proves the update path — because mocks never wait, and a wait that is right on create can hang
or pass too early on the next `pulumi up` (issue 10, "Waits").

One row per waiting resource or gate; `proof` names pytest node ids (file::test) whose failure
would show the update path broken. Rows for the Auto Scaling group and certificate validation
are added by their owners.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Wait:
    thing: str  # the resource or command, as the program names it
    on_create: str
    on_update: str
    proof: tuple[str, ...]


WAITS: tuple[Wait, ...] = (
    Wait(
        thing="server gate (command.local.Command <name>-servers, components/readiness.py)",
        on_create=(
            "single server: the instance running and cloud-init done (SSM or console), then "
            "healthy in the target group when load balanced. Fleet: the group has no instance "
            "refresh yet, so as many servers as its desired capacity of --launch-template-"
            "version, pending or in service, each then as a single server."),
        on_update=(
            "re-runs when its triggers (instance id or group name, launch template version, "
            "user-data hash, app ref) or its command line change. Fleet: waits while the "
            "group's latest instance refresh (the provider starts it and returns) is Pending/"
            "InProgress/Cancelling/RollbackInProgress/Baking; fails (exit 1) with its status, "
            "reason and percentage, and the rollback reason, when it ends other than "
            "Successful; then checks only the servers of the new version."),
        proof=(
            "tests/readiness/test_readiness_refresh.py::"
            "test_waits_while_the_refresh_runs_then_takes_the_new_version_s_servers",
            "tests/readiness/test_readiness_refresh.py::"
            "test_a_refresh_that_did_not_succeed_fails_the_gate_with_its_reason",
            "tests/readiness/test_readiness_refresh.py::"
            "test_only_servers_of_the_deployed_version_count",
            "tests/readiness/test_readiness_refresh.py::"
            "test_a_refresh_still_running_at_the_deadline_is_the_reason_given",
            "tests/readiness/test_readiness_aws.py::"
            "test_group_gate_waits_for_the_instance_refresh",
            "tests/readiness/test_readiness_aws.py::"
            "test_group_gate_fails_on_a_rolled_back_refresh",
        )),
    Wait(
        thing="URL gate (command.local.Command <name>-url, components/readiness.py)",
        on_create=(
            "after the server gate, the DNS records, the certificate validation and the "
            "listeners: the health URL answers 200 (refused connections, 502/503/504 are "
            "'not yet'), bounded by readinessTimeoutSeconds."),
        on_update=(
            "re-runs when the URL or the server gate's triggers change, after the server gate "
            "has re-run: the same check of the same URL (no state of its own to converge)."),
        proof=(
            "tests/readiness/test_readiness_http.py::test_503_then_200_is_ready",
            "tests/unit/test_program.py::test_gates_for_the_servers_and_the_url",
        )),
    Wait(
        thing="rollout (command.local.Command <name>-rollout, components/release.py)",
        on_create=(
            "after the gates: each in-service server (or the single one) in turn runs its "
            "release script through SSM Run Command until Success, then is healthy in the "
            "target group; a fresh group's servers already read the ref at boot."),
        on_update=(
            "re-runs only when appRef changes: the same one-server-at-a-time release, the "
            "first failure or a timeout stops it (exit 1) naming the server, the servers after "
            "it keep their release."),
        proof=(
            "tests/release/test_rollout.py::"
            "test_asg_rollout_releases_on_each_in_service_server_in_order",
            "tests/release/test_rollout.py::"
            "test_the_first_failure_stops_the_rollout_and_quotes_the_servers_reason",
            "tests/unit/test_components.py::test_rollout_runs_only_when_the_ref_changes",
        )),
)
