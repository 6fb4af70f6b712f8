"""The app's SSM parameters: the release ref servers deploy, the secrets the program stores,
and (tlsMode letsencrypt) the slot where the server keeps its certificate.

Servers read them at boot (the instance role may read exactly these), so they exist before any
server. Secret values arrive as Pulumi secrets and stay encrypted in state; outputs carry names.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from components import naming
from components.config import StackConfig

# The certificate slot's value until the server's first certificate: not a PEM, so the server
# finds nothing to restore. The server owns the content (`ignore_changes`), never the program.
TLS_PLACEHOLDER = "none"


class AppParameters(pulumi.ComponentResource):
    parameters: list[aws.ssm.Parameter]
    secret_names: list[str]

    def __init__(self, name: str, cfg: StackConfig, *,
                 secret_values: Mapping[str, pulumi.Output[str]],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:parameters:AppParameters", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.parameters = []
        if not cfg.app.bundled:
            self.parameters.append(aws.ssm.Parameter(
                f"{name}-release-ref", name=naming.release_ref_parameter(cfg), type="String",
                # not a secret: `insecure_value` keeps the ref readable in diffs and state
                insecure_value=cfg.app.ref, description=f"git ref {cfg.prefix} servers deploy",
                tags=cfg.tags, opts=child))
        self.secret_names = []
        for key in cfg.app.stored_secrets:
            parameter_name = cfg.app.secrets[key]  # named once, in config.parse
            self.parameters.append(aws.ssm.Parameter(
                f"{name}-secret-{key.lower().replace('_', '-')}", name=parameter_name,
                type="SecureString", value=pulumi.Output.secret(secret_values[key]),
                description=f"{key} of {cfg.prefix}", tags=cfg.tags, opts=child))
            self.secret_names.append(parameter_name)
        if cfg.tls.mode == "letsencrypt":
            self.parameters.append(aws.ssm.Parameter(
                f"{name}-tls", name=naming.tls_parameter(cfg), type="SecureString",
                tier=naming.TLS_PARAMETER_TIER, value=pulumi.Output.secret(TLS_PLACEHOLDER),
                description=f"Let's Encrypt certificate and key of {cfg.prefix}, kept by its "
                "server across replacements", tags=cfg.tags,
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"])))
        self.register_outputs({"secret_names": self.secret_names})
