"""An ACM certificate for every public name, validated through DNS records we create."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from components.dns import record_name


def validation_option(options: Sequence[Any], domain: str) -> dict[str, str]:
    """ACM lists one validation record per name, in no promised order: pick by name."""
    for option in options:
        if option["domain_name"] == domain:
            return {k: option[k] for k in ("resource_record_name", "resource_record_type",
                                           "resource_record_value")}
    raise ValueError(f"ACM returned no DNS validation record for {domain}")


class Certificate(pulumi.ComponentResource):
    certificate_arn: pulumi.Output[str]  # resolves only once ACM has issued the certificate

    def __init__(self, name: str, *, names: tuple[str, ...], zone_id: pulumi.Input[str],
                 tags: dict[str, str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:tls:Certificate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cert = aws.acm.Certificate(
            f"{name}-cert", domain_name=names[0], subject_alternative_names=list(names[1:]),
            validation_method="DNS", tags=tags, opts=child)
        records = []
        for domain in names:
            option = cert.domain_validation_options.apply(
                lambda opts, d=domain: validation_option(opts, d))
            records.append(aws.route53.Record(
                f"{name}-validation-{record_name(domain)}", zone_id=zone_id,
                name=option["resource_record_name"], type=option["resource_record_type"],
                records=[option["resource_record_value"]], ttl=60,
                allow_overwrite=True,  # ACM reuses the same record when a cert is replaced
                opts=child))
        validation = aws.acm.CertificateValidation(
            f"{name}-validation", certificate_arn=cert.arn,
            validation_record_fqdns=[r.fqdn for r in records], opts=child)
        self.validation = validation
        self.certificate_arn = validation.certificate_arn
        self.register_outputs({"certificate_arn": self.certificate_arn})
