"""The app's SSM parameters: the release pointer servers deploy (a git ref, or the bundle's
sha256@version), the secrets the program stores (a private appRepo's deploy key or token among
them), where its database and cache are (JSON without credentials), and (tlsMode letsencrypt)
the slot where the server keeps its certificate.

Servers read them at boot (the instance role may read exactly these), so they exist before any
server. Secret values arrive as Pulumi secrets and stay encrypted in state; outputs carry names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components import naming
from components.config import AppConfig

# The certificate slot's value until the server's first certificate: not a PEM, so the server
# finds nothing to restore. The server owns the content (`ignore_changes`), never the program.
TLS_PLACEHOLDER = "none"


class AppParameters(pulumi.ComponentResource):
    parameters: list[aws.ssm.Parameter]
    secret_names: list[str]
    release_ref_name: str

    def __init__(self, name: str, app: AppConfig, *, release_ref_parameter: str,
                 release_pointer: pulumi.Input[str], tls_parameter: str | None,
                 secret_values: Mapping[str, pulumi.Output[str]], tags: dict[str, str],
                 locations: Sequence[tuple[str, str, pulumi.Input[str]]] = (),
                 opts: pulumi.ResourceOptions | None = None):
        """`release_ref_parameter`, `tls_parameter`: their names (`components.naming`); the
        certificate slot only when the server keeps a Let's Encrypt certificate (else None).
        `release_pointer`: appRef, or the uploaded bundle's sha256@version. `locations`:
        (what, parameter name, JSON value) of the database and the cache servers connect to."""
        super().__init__("webstack:parameters:AppParameters", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.parameters = []
        self.release_ref_name = release_ref_parameter
        what = ("image (host/name@sha256:digest)" if app.container else
                "git ref" if app.from_git else "code bundle (sha256@version)")
        self.parameters.append(aws.ssm.Parameter(
            f"{name}-release-ref", name=release_ref_parameter, type="String",
            # not a secret: `insecure_value` keeps the pointer readable in diffs and state
            insecure_value=release_pointer, description=f"the {what} {name} servers deploy",
            tags=tags, opts=child))
        for what, parameter_name, value in locations:
            self.parameters.append(aws.ssm.Parameter(
                f"{name}-{what}", name=parameter_name, type="String", insecure_value=value,
                description=f"where {name}'s {what} is (its credentials are in Secrets "
                "Manager)", tags=tags, opts=child))
        self.secret_names = []
        for key in app.stored_secrets:
            parameter_name = app.secrets[key]  # named once, in config.parse
            self.parameters.append(aws.ssm.Parameter(
                f"{name}-secret-{key.lower().replace('_', '-')}", name=parameter_name,
                type="SecureString", value=pulumi.Output.secret(secret_values[key]),
                description=f"{key} of {name}", tags=tags, opts=child))
            self.secret_names.append(parameter_name)
        if app.repo_credential is not None:  # a private appRepo's deploy key or token
            credential = app.repo_credential
            self.parameters.append(aws.ssm.Parameter(
                f"{name}-repo-{credential.parameter.rsplit('/', 1)[1]}", name=credential.parameter,
                type="SecureString", value=pulumi.Output.secret(secret_values[credential.setting]),
                description=f"{credential.setting} of {name}, read by its servers at release",
                tags=tags, opts=child))
            self.secret_names.append(credential.parameter)
        if tls_parameter is not None:
            self.parameters.append(aws.ssm.Parameter(
                f"{name}-tls", name=tls_parameter, type="SecureString",
                tier=naming.TLS_PARAMETER_TIER, value=pulumi.Output.secret(TLS_PLACEHOLDER),
                description=f"Let's Encrypt certificate and key of {name}, kept by its "
                "server across replacements", tags=tags,
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"])))
        self.register_outputs({"secret_names": self.secret_names})
