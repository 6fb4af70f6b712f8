"""Names both sides must agree on: what the program creates in AWS and what the server's
first boot reads or writes (SSM parameters, log groups, metric dimensions).

Pure functions of the config, so the renderer (before any resource exists) and the components
compute the same strings.
"""

from __future__ import annotations

from components.config import StackConfig

METRICS_NAMESPACE = "CWAgent"  # the CloudWatch agent's default


def parameter_prefix(cfg: StackConfig) -> str:
    """Every SSM parameter of this app and stack lives under this path."""
    return f"/{cfg.project}/{cfg.stack}/{cfg.app.name}"


def release_ref_parameter(cfg: StackConfig) -> str:
    """Holds the git ref servers deploy: read at boot, so a ref change needs no new servers."""
    return f"{parameter_prefix(cfg)}/release-ref"


def secret_parameter(cfg: StackConfig, key: str) -> str:
    """Where a secret set with `appSecretValues` is stored (SecureString)."""
    return f"{parameter_prefix(cfg)}/secrets/{key}"


def log_groups(cfg: StackConfig) -> dict[str, str]:
    """CloudWatch log groups the agent ships to, by kind; created with retention by the program."""
    base = f"/{cfg.project}/{cfg.stack}/{cfg.app.name}"
    return {kind: f"{base}/{kind}" for kind in ("nginx-access", "nginx-error", "app",
                                                "cloud-init")}
