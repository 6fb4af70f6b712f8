"""webstack: a Python web app on AWS in one `pulumi up`.

Read and validate every setting, size the servers and render the first boot — all before the
first resource, so bad input fails whole — then build the components in dependency order and
export the contract.
"""

import pulumi

from components import bootstrap, config, cost, naming, outputs, placement, sizing
from components.artefact import ArtefactArgs, ServerArtefact
from components.certificate import Certificate
from components.dns import Dns, lookup_zone_id
from components.firewall import Firewall
from components.fleet import ServerFleet
from components.instance_role import InstanceRole
from components.loadbalancer import LoadBalancer
from components.monitoring import LogGroups, Monitoring
from components.network import Network
from components.parameters import AppParameters
from components.readiness import Readiness, health_check_command
from components.release import Rollout
from components.webserver import WebServer

prices = sizing.PriceTable.load()
cfg = config.load(prices.regions())
choice = sizing.size(cfg.server, cfg.region, prices)
bucket = naming.artefact_bucket(cfg.prefix, placement.account_id(), cfg.region)
user_data = bootstrap.render(cfg, bucket=bucket)
user_data_base64 = user_data.ec2_user_data_base64
site = placement.lookup(cfg, choice.instance_type)
image = placement.lookup_image(cfg)

name = cfg.prefix
network = Network(name, cfg.network, cfg.tags, site)
firewall = Firewall(name, cfg, network.vpc_id)
artefact = ServerArtefact(name, ArtefactArgs(
    bucket=bucket, key=bootstrap.artefact_key(user_data.artefact_sha256),
    content=user_data.artefact, tags=cfg.tags))
parameters = AppParameters(name, cfg, secret_values=config.load_secret_values())
role = InstanceRole(name, cfg, artefact_bucket=bucket)
logs = LogGroups(name, cfg)
# what the first boot reads or writes to, and the grants it needs for that
boot_after = [artefact.object, *parameters.parameters, *logs.groups, *role.policies]

zone_id = lookup_zone_id(cfg.domain.zone) if cfg.domain.zone else None
certificate = None
if cfg.tls.mode == "acm" and zone_id is not None:
    certificate = Certificate(name, names=cfg.domain.names, zone_id=zone_id, tags=cfg.tags)

server = fleet = alb = None
if not cfg.server.autoscaling:
    server = WebServer(name, cfg, instance_type=choice.instance_type, image=image,
                       subnet_id=network.server_subnet_ids.apply(lambda ids: ids[0]),
                       security_group_id=firewall.web_group_id,
                       instance_profile=role.profile_name, key_name=firewall.ssh_key_name,
                       user_data_base64=user_data_base64, boot_after=boot_after)
if cfg.load_balanced:
    assert firewall.alb_group_id is not None
    alb = LoadBalancer(name, cfg, vpc_id=network.vpc_id, subnet_ids=network.subnet_ids,
                       security_group_id=firewall.alb_group_id,
                       instance_ids=[server.instance_id] if server else [],
                       certificate_arn=certificate.certificate_arn if certificate else None)
if cfg.server.autoscaling:
    assert alb is not None
    fleet = ServerFleet(name, cfg, instance_type=choice.instance_type, image=image,
                        subnet_ids=network.server_subnet_ids,
                        security_group_id=firewall.web_group_id,
                        instance_profile_arn=role.profile_arn, key_name=firewall.ssh_key_name,
                        user_data_base64=user_data_base64, target_group_arn=alb.target_group_arn,
                        boot_after=boot_after)

# The servers, whichever shape they have: the resource to wait for and its ID, and the handles
# the readiness gate, the rollout and the health-check command take (one of the two is None).
if fleet is not None:
    servers, servers_id = fleet.group, fleet.group_name
else:
    assert server is not None
    servers, servers_id = server.instance, server.instance_id
instance_id = server.instance_id if server else None
group_name = fleet.group_name if fleet else None
target_group_arn = alb.target_group_arn if alb else None

dns = None
if zone_id is not None and cfg.domain.names:
    if alb is not None:
        dns = Dns(name, names=cfg.domain.names, zone_id=zone_id,
                  alb_dns_name=alb.dns_name, alb_zone_id=alb.zone_id)
    elif server is not None:
        dns = Dns(name, names=cfg.domain.names, zone_id=zone_id, public_ip=server.public_ip)

scheme = "https" if cfg.https else "http"
if cfg.domain.hostname:
    url: pulumi.Input[str] = f"{scheme}://{cfg.domain.hostname}/"
elif alb is not None:
    url = pulumi.Output.concat(scheme, "://", alb.dns_name, "/")
else:
    assert server is not None
    url = server.public_ip.apply(lambda ip: f"{scheme}://{ip}/")

# Servers ready (after the listeners their health checks need) → the Elastic IP moves to a
# ready server → the release rolls out → the public URL is checked, vouching for that release.
readiness = None
if cfg.readiness.enabled:
    readiness = Readiness(
        name, cfg, servers=servers, instance_id=instance_id, group_name=group_name,
        launch_version=fleet.launch_template_version if fleet else None,
        user_data_sha256=user_data.sha256, target_group_arn=target_group_arn,
        servers_after=alb.listeners if alb else [])
server_gate = [readiness.server_gate] if readiness else []
if server is not None:
    server.attach_address(after=server_gate)

rollout = None
if not cfg.app.bundled:
    rollout = Rollout(name, cfg, instance_id=instance_id, group_name=group_name,
                      target_group_arn=target_group_arn,
                      depends_on=[servers, *parameters.parameters, *server_gate])

# a self-signed certificate cannot be verified from here: servers are gated alone
if readiness is not None and cfg.tls.mode != "selfsigned":
    readiness.check_url(url, after=[
        *([server.association] if server and server.association else []),
        *(dns.records if dns else []), *([certificate.validation] if certificate else []),
        *(alb.listeners if alb else []), *([rollout.command] if rollout else [])])

monitoring = Monitoring(
    name, cfg, servers=servers_id,
    lb_arn_suffix=alb.arn_suffix if alb else None,
    tg_arn_suffix=alb.target_group_arn_suffix if alb else None,
    certificate_arn=certificate.certificate_arn if certificate else None)

outputs.export(cfg, outputs.collect(
    cfg, url=url, choice=choice, network=network, firewall=firewall, server=server,
    fleet=fleet, alb=alb, certificate=certificate, monitoring=monitoring, logs=logs,
    user_data_sha256=user_data.sha256, cost=cost.estimate(cfg, choice, prices),
    health_check=health_check_command(cfg, instance_id=instance_id, group_name=group_name,
                                      url=url)))
