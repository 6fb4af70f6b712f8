"""What each waiting thing of the program waits for, on create and on update, and the test that
proves the update path — because mocks never wait, and a wait that is right on create can hang
or pass too early on the next `pulumi up`.

One row per waiting resource or gate, and for the one that deliberately waits for nothing (the
Auto Scaling group); `proof` names pytest node ids (file::test) whose failure would show the
update path broken.
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
            "after the servers and the load balancer's listeners (a target is health-checked "
            "only once a listener forwards to it; the HTTPS one waits for the certificate). "
            "Single server: the instance running and cloud-init done (SSM or console), then "
            "healthy in the target group when load balanced. Fleet: the group has no instance "
            "refresh yet, so as many servers as its desired capacity of --launch-template-"
            "version, pending or in service, each then as a single server."),
        on_update=(
            "re-runs when its triggers (instance id or group name, launch template version, "
            "user-data hash; not the app ref, which is a rollout on the same servers) or its "
            "command line change. Fleet: waits while the "
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
            "after the server gate, the Elastic IP's association, the DNS records, the "
            "certificate validation, the listeners and the rollout: the health URL answers 200 "
            "(refused connections, 502/503/504 are 'not yet'), bounded by "
            "readinessTimeoutSeconds."),
        on_update=(
            "re-runs when the URL, the server gate's triggers or the app ref change, after the "
            "server gate and the rollout have re-run: it vouches for the new release, never "
            "the old one."),
        proof=(
            "tests/readiness/test_readiness_http.py::test_503_then_200_is_ready",
            "tests/unit/test_program.py::test_gates_for_the_servers_and_the_url",
            "tests/unit/test_program.py::test_rollout_only_for_a_git_app_after_the_gates",
        )),
    Wait(
        thing="rollout (command.local.Command <name>-rollout, components/release.py)",
        on_create=(
            "after the server gate: each in-service server (or the single one) in turn runs its "
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
    Wait(
        thing="Auto Scaling group (aws:autoscaling/group:Group, components/fleet.py)",
        on_create=(
            "nothing: wait_for_capacity_timeout 0. The provider's ELB wait would count exactly "
            "N healthy servers, before any listener has health-checked them; the server gate "
            "waits instead, with reasons."),
        on_update=(
            "nothing: wait_for_elb_capacity would wait for exactly N on every update and time "
            "out once scaling moved the size; min_elb_capacity is create-only but meets the "
            "same listener problem. The provider starts an instance refresh and returns; the "
            "server gate waits for it."),
        proof=(
            "tests/unit/test_components.py::test_fleet_launch_template_group_scaling_and_refresh",
            "tests/unit/test_components.py::test_fixed_size_fleet_keeps_the_count_it_is_given",
            "tests/readiness/test_readiness_refresh.py::"
            "test_waits_while_the_refresh_runs_then_takes_the_new_version_s_servers",
        )),
    Wait(
        thing="certificate validation (aws:acm/certificateValidation, components/certificate.py)",
        on_create=(
            "ACM says ISSUED for the DNS records we create (the provider's default create "
            "timeout, 75 minutes); the HTTPS listener takes the certificate from it, so no "
            "listener, and no gate, runs before the certificate is valid."),
        on_update=(
            "no update path: its inputs (the certificate, the record names) force a new "
            "validation, which waits the same way; an unchanged certificate waits for nothing."),
        proof=(
            "tests/unit/test_program.py::test_listeners_wait_for_the_validated_certificate",
            "tests/unit/test_replacement.py::test_a_second_run_changes_nothing",
        )),
    Wait(
        thing="Elastic IP association (aws:ec2/eipAssociation, components/webserver.py)",
        on_create=(
            "waits for nothing itself; created after the server gate, so the address reaches "
            "a server only once it is ready."),
        on_update=(
            "a new server replaces the association (delete before create: seconds without the "
            "address), after the new server's gate passed; the old server is deleted after."),
        proof=("tests/unit/test_program.py::test_gates_for_the_servers_and_the_url",)),
)
