"""The servers in the shape the topology gave them, one instance or a fleet: what later steps
wait for, target and watch, so none of them asks which shape it was."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

if TYPE_CHECKING:
    from components.fleet import ServerFleet
    from components.webserver import WebServer


@dataclass(frozen=True)
class Servers:
    resource: pulumi.Resource  # the instance or the group: what to wait for
    id: pulumi.Output[str]  # the instance ID or the group name: the alarms' dimension
    image_id: pulumi.Output[str | None]  # the state's image: kept when unpinned
    # the readiness gate, the rollout and the health check target one of these two
    instance_id: pulumi.Output[str] | None = None  # a single server
    group_name: pulumi.Output[str] | None = None  # a fleet
    launch_version: pulumi.Output[int] | None = None  # a fleet's launch template version
    public_ip: pulumi.Output[str] | None = None  # a single server's
    server: WebServer | None = None  # a single server, whose Elastic IP moves after its gate

    @classmethod
    def single(cls, server: WebServer) -> Servers:
        return cls(server.instance, server.instance_id, server.image_id,
                   instance_id=server.instance_id, public_ip=server.public_ip, server=server)

    @classmethod
    def fleet(cls, fleet: ServerFleet) -> Servers:
        return cls(fleet.group, fleet.group_name, fleet.image_id, group_name=fleet.group_name,
                   launch_version=fleet.launch_template_version)

    def attach_address(self, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
        """A single server's Elastic IP moves to it once `after` (its readiness gate) passes; a
        fleet has none. Returns what the public URL then waits for."""
        if self.server is None:
            return []
        self.server.attach_address(after=after)
        return [self.server.association] if self.server.association else []
