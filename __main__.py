"""webstack: a Python web app on AWS in one `pulumi up`.

Read and validate every setting, size the servers and render the first boot — all before the
first resource, so bad input fails whole — then build the components and export the contract.
"""

import pulumi

from components import bootstrap, config, cost, outputs, sizing
from components.certificate import Certificate
from components.dns import Dns, lookup_zone_id
from components.firewall import Firewall
from components.loadbalancer import LoadBalancer
from components.network import Network
from components.readiness import Readiness, gate_command, health_url
from components.webserver import WebServer

prices = sizing.PriceTable.load()
cfg = config.load(prices.regions())
choice = sizing.size(cfg.server, cfg.region, prices)
user_data = bootstrap.render(cfg)
user_data_base64 = user_data.ec2_user_data_base64

network = Network(cfg.prefix, cfg.network, cfg.tags)
firewall = Firewall(cfg.prefix, cfg, network.vpc_id)
servers = WebServer(cfg.prefix, cfg, instance_type=choice.instance_type,
                    subnet_ids=network.subnet_ids, security_group_id=firewall.web_group_id,
                    user_data_base64=user_data_base64)

zone_id = lookup_zone_id(cfg.domain.zone) if cfg.domain.zone else None
certificate = None
if cfg.tls.mode == "acm" and zone_id is not None:
    certificate = Certificate(cfg.prefix, names=cfg.domain.names, zone_id=zone_id, tags=cfg.tags)

alb = None
if cfg.load_balanced:
    assert firewall.alb_group_id is not None
    alb = LoadBalancer(cfg.prefix, cfg, vpc_id=network.vpc_id, subnet_ids=network.subnet_ids,
                       security_group_id=firewall.alb_group_id,
                       instance_ids=[s.id for s in servers.instances],
                       certificate_arn=certificate.certificate_arn if certificate else None)

dns = None
if zone_id is not None and cfg.domain.names:
    if alb is not None:
        dns = Dns(cfg.prefix, names=cfg.domain.names, zone_id=zone_id,
                  alb_dns_name=alb.dns_name, alb_zone_id=alb.zone_id)
    else:
        dns = Dns(cfg.prefix, names=cfg.domain.names, zone_id=zone_id,
                  public_ip=servers.public_ips.apply(lambda ips: ips[0]))

scheme = "https" if cfg.https else "http"
if cfg.domain.hostname:
    url: pulumi.Input[str] = f"{scheme}://{cfg.domain.hostname}/"
elif alb is not None:
    url = pulumi.Output.concat(scheme, "://", alb.dns_name, "/")
else:
    url = servers.public_ips.apply(lambda ips: f"{scheme}://{ips[0]}/")

if cfg.readiness.enabled:
    Readiness(
        cfg.prefix, cfg, instances=servers.instances,
        instance_ids=[s.id for s in servers.instances], user_data_sha256=user_data.sha256,
        target_group_arn=alb.target_group_arn if alb else None,
        # a self-signed certificate cannot be verified from here: servers are gated alone
        public_url=None if cfg.tls.mode == "selfsigned" else url,
        url_depends_on=[*servers.addresses, *(dns.records if dns else []),
                        *([certificate.validation] if certificate else []),
                        *(alb.listeners if alb else [])])

values = {
    "url": url,
    "region": cfg.region,
    "publicIps": servers.public_ips,
    "instanceIds": servers.instance_ids,
    "instanceType": choice.instance_type,
    "sizingReason": choice.reason,
    "vpcId": network.vpc_id,
    "subnetIds": network.subnet_ids,
    "webSecurityGroupId": firewall.web_group_id,
    "ssmSessionCommands": servers.instance_ids.apply(lambda ids: [
        f"aws ssm start-session --region {cfg.region} --target {i}" for i in ids]),
    "userDataSha256": user_data.sha256,
    "healthCheckCommand": pulumi.Output.all(servers.instance_ids, url).apply(
        lambda a: gate_command(region=cfg.region, timeout=cfg.readiness.timeout_seconds,
                               interval=cfg.readiness.interval_seconds, name=cfg.prefix,
                               instance_ids=a[0], url=health_url(a[1], cfg.app.health_path))),
    "estimatedMonthlyCost": cost.estimate(cfg, choice, prices),
}
if cfg.domain.hostname:
    values["hostname"] = cfg.domain.hostname
    values["dnsNames"] = list(cfg.domain.names)
if alb is not None:
    values["albDnsName"] = alb.dns_name
    values["albSecurityGroupId"] = firewall.alb_group_id
if certificate is not None:
    values["certificateArn"] = certificate.certificate_arn
outputs.export(cfg, values)
