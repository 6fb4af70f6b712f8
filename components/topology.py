"""The stack's shape, derived once from the config: what runs the app, what faces clients, where
TLS ends. Components and the program take this instead of re-deriving it from settings.

Pure (no Pulumi), so the renderer, the components and the tests agree on one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from components.config import StackConfig

ServerShape = Literal["single", "fleet"]
Edge = Literal["direct", "load_balancer"]
TlsEnd = Literal["none", "alb", "server"]
Issuer = Literal["none", "acm", "letsencrypt", "selfsigned"]


@dataclass(frozen=True)
class Topology:
    servers: ServerShape  # one EC2 instance, or an Auto Scaling group
    edge: Edge  # clients reach the server itself, or an application load balancer
    certificate: Issuer  # who issues the public certificate (tlsMode)

    @property
    def fleet(self) -> bool:
        return self.servers == "fleet"

    @property
    def load_balanced(self) -> bool:
        return self.edge == "load_balancer"

    @property
    def tls(self) -> TlsEnd:
        """Where TLS terminates: ACM's certificate sits on the ALB; Let's Encrypt's and the
        self-signed one in nginx on the server."""
        if self.certificate == "none":
            return "none"
        return "alb" if self.certificate == "acm" else "server"

    @property
    def scheme(self) -> str:
        """The public URL's scheme: https wherever TLS terminates."""
        return "http" if self.tls == "none" else "https"

    @property
    def public_ports(self) -> tuple[int, ...]:
        """What the world may reach on the edge. Port 80 stays open with TLS on: the redirect to
        HTTPS, and ACME HTTP-01 challenges on a server with Let's Encrypt."""
        return (80,) if self.tls == "none" else (80, 443)

    @property
    def url_checkable(self) -> bool:
        """A client here can verify the public URL: no self-signed certificate in the way."""
        return self.certificate != "selfsigned"


def derive(cfg: StackConfig) -> Topology:
    """Several servers or scaling bounds make a fleet; a fleet, or ACM (whose certificates live
    only on AWS's load balancers), puts an ALB in front."""
    fleet = cfg.server.autoscaling
    return Topology(servers="fleet" if fleet else "single",
                    edge="load_balancer" if fleet or cfg.tls.mode == "acm" else "direct",
                    certificate=cast(Issuer, cfg.tls.mode))
