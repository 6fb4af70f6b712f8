"""webstack: a Python web app on AWS in one `pulumi up`.

Read and validate every setting, derive the topology, size the servers and render the first
boot — all before the first resource, so bad input fails whole — then build the components in
dependency order, in exactly the shape the topology says, and export the contract.
"""

from pathlib import Path

import pulumi

from components import (
    bootstrap,
    bundle,
    config,
    cost,
    datastores,
    image,
    naming,
    outputs,
    placement,
    sizing,
    topology,
)
from components.artefact import ArtefactArgs, BundleArgs, ServerArtefact
from components.certificate import Certificate
from components.dns import Dns, Endpoint, lookup_zone_id
from components.firewall import Firewall
from components.fleet import ServerFleet
from components.image import AppImage, ImageArgs
from components.instance_role import InstanceRole, role_args
from components.loadbalancer import LoadBalancer
from components.monitoring import LogGroups, Monitoring
from components.network import Network
from components.parameters import AppParameters
from components.readiness import AwsIdentity, Readiness, health_check_command
from components.release import Rollout
from components.servers import Servers
from components.webserver import WebServer

prices = sizing.PriceTable.load()
cfg = config.load(prices.regions())
shape = topology.derive(cfg)
choice = sizing.size(cfg.server, cfg.region, prices)
sized_stores = datastores.plan(cfg, prices)
account = placement.account_id()
identity = AwsIdentity(account)  # the provider's, for every command the program runs
bucket = naming.artefact_bucket(cfg.prefix, account, cfg.region)
user_data = bootstrap.render(cfg, bucket=bucket)
user_data_base64 = user_data.ec2_user_data_base64
# appSource's content: the bundle servers fetch, or the context of the image the program builds
code = None if cfg.app.from_git or cfg.app.image else bundle.of_app(cfg.app)
named_image = image.resolve_named(cfg) if cfg.app.image else ""  # appImage, by digest
site = placement.lookup(cfg, choice.instance_type)
server_image = placement.lookup_image(cfg)

name, tags = cfg.prefix, cfg.tags
network = Network(name, cfg.network, tags, site, private=sized_stores.private)
firewall = Firewall(name, shape, cfg.access, app_repo=cfg.app.repo, tags=tags,
                    vpc_id=network.vpc_id, data_ports=sized_stores.ports(cfg))
# the database and cache; servers find them through SSM parameters (`locations`)
stores = datastores.build(name, cfg, sized_stores, network, firewall)
artefact = ServerArtefact(name, ArtefactArgs(
    bucket=bucket, key=bootstrap.artefact_key(user_data.artefact_sha256),
    content=user_data.artefact, tags=tags,
    bundle=BundleArgs(
        key=naming.bundle_key(cfg.app.name), sha256=code.sha256,
        path=bundle.cached(code, Path.cwd()), kept=cfg.app.bundles_kept)
    if code and not cfg.app.container else None))
app_image = AppImage(name, cfg, ImageArgs(
    context=cfg.app.source + (f"/{cfg.app.path}" if cfg.app.path else ""),
    dockerfile=cfg.app.dockerfile, platform=image.PLATFORMS[cfg.server.arch],
    tag=image.build_tag(code.sha256), kept=cfg.app.images_kept, tags=tags)
) if code and cfg.app.builds_image else None
# What servers release (the pointer) and what makes a new release (known at preview, but for a
# new build's digest)
pointer = (app_image.reference if app_image else
           named_image or artefact.release_pointer or cfg.app.ref)
release_code = (app_image.reference if app_image else
                named_image or (code.sha256 if code else cfg.app.ref))
parameters = AppParameters(
    name, cfg.app, release_ref_parameter=naming.release_ref_parameter(cfg),
    release_pointer=pointer,
    tls_parameter=naming.tls_parameter(cfg) if shape.certificate == "letsencrypt" else None,
    secret_values=config.load_secret_values(), tags=tags, locations=stores.locations)
role = InstanceRole(name, role_args(cfg, account, artefact_bucket=bucket,
                                    secrets=stores.secret_arns))
logs = LogGroups(name, names=naming.log_groups(cfg),
                 retention_days=cfg.monitoring.log_retention_days, tags=tags)
# what the first boot reads or writes to, and the grants it needs for that (the data stores'
# parameters follow them being available: a first release may migrate)
boot_after = [artefact.object, *parameters.parameters, *logs.groups, *role.policies]

zone_id = lookup_zone_id(cfg.domain.zone) if cfg.domain.zone else None
certificate = None
if shape.certificate == "acm" and zone_id is not None:
    certificate = Certificate(name, names=cfg.domain.names, zone_id=zone_id, tags=tags)


def load_balancer(instance_ids: list[pulumi.Input[str]]) -> LoadBalancer:
    """The ALB, registering `instance_ids` itself (none: an Auto Scaling group registers)."""
    return LoadBalancer(
        name, idle_timeout=cfg.lb_idle_timeout, health_path=cfg.app.health_path, tags=tags,
        vpc_id=network.vpc_id, subnet_ids=network.subnet_ids,
        security_group_id=firewall.alb_group_id, instance_ids=instance_ids,
        certificate_arn=certificate.certificate_arn if certificate else None)


# The servers and what clients connect to: a fleet always behind the load balancer, one server
# behind it only when ACM terminates TLS there, else facing clients on its own address.
if shape.fleet:
    alb = load_balancer(instance_ids=[])
    servers = Servers.fleet(ServerFleet(
        name, cfg.server, cfg.scaling, instance_type=choice.instance_type, image=server_image,
        subnet_ids=network.server_subnet_ids, security_group_id=firewall.web_group_id,
        instance_profile_arn=role.profile_arn, key_name=firewall.ssh_key_name,
        user_data_base64=user_data_base64, target_group_arn=alb.target_group_arn, tags=tags,
        boot_after=boot_after))
    endpoint = alb.endpoint
else:
    server = WebServer(name, behind_load_balancer=shape.load_balanced,
                       instance_type=choice.instance_type, image=server_image,
                       disk_gib=cfg.server.disk_gib,
                       subnet_id=network.server_subnet_ids.apply(lambda ids: ids[0]),
                       security_group_id=firewall.web_group_id,
                       instance_profile=role.profile_name, key_name=firewall.ssh_key_name,
                       user_data_base64=user_data_base64, tags=tags, boot_after=boot_after)
    alb = load_balancer(instance_ids=[server.instance_id]) if shape.load_balanced else None
    servers = Servers.single(server)
    endpoint = alb.endpoint if alb else Endpoint(server.public_ip)
target_group_arn = alb.target_group_arn if alb else None
listeners = alb.listeners if alb else []

dns = None
if zone_id is not None and cfg.domain.names:
    dns = Dns(name, names=cfg.domain.names, zone_id=zone_id, target=endpoint)
url = pulumi.Output.concat(shape.scheme, "://", cfg.domain.hostname or endpoint.host, "/")

# Servers ready (after the listeners their health checks need) → the Elastic IP moves to a
# ready server → the release rolls out → the public URL is checked, vouching for that release.
readiness = None
if cfg.readiness.enabled:
    readiness = Readiness(
        name, cfg, identity, servers=servers.resource, instance_id=servers.instance_id,
        group_name=servers.group_name, launch_version=servers.launch_version,
        user_data_sha256=user_data.sha256, target_group_arn=target_group_arn,
        servers_after=listeners)
server_gate = [readiness.server_gate] if readiness else []
address = servers.attach_address(after=server_gate)

# Servers booting read the pointer themselves; running ones get new code from the rollout.
rollout = Rollout(name, cfg, identity, pointer=pointer,
                  code=release_code, instance_id=servers.instance_id,
                  group_name=servers.group_name, target_group_arn=target_group_arn,
                  depends_on=[servers.resource, *parameters.parameters, *server_gate])

# a self-signed certificate cannot be verified from here: servers are gated alone
if readiness is not None and shape.url_checkable:
    readiness.check_url(url, after=[
        *address, *(dns.records if dns else []),
        *([certificate.validation] if certificate else []), *listeners, rollout.command],
        code=release_code)

monitoring = Monitoring(
    name, shape, cfg.monitoring, region=cfg.region, tags=tags, servers=servers.id,
    lb_arn_suffix=alb.arn_suffix if alb else None,
    tg_arn_suffix=alb.target_group_arn_suffix if alb else None,
    certificate_arn=certificate.certificate_arn if certificate else None, **stores.monitoring)

outputs.export(outputs.collect(
    region=cfg.region, app_name=cfg.app.name, names=cfg.domain.names, secrets=cfg.app.secrets,
    url=url, choice=choice, network=network, firewall=firewall, servers=servers, alb=alb,
    certificate=certificate,
    parameters=parameters, monitoring=monitoring, logs=logs, user_data_sha256=user_data.sha256,
    cost=cost.estimate(shape, cfg.server, cfg.region, choice, prices,
                       database=sized_stores.database, cache=sized_stores.cache),
    health_check=health_check_command(cfg, identity, instance_id=servers.instance_id,
                                      group_name=servers.group_name, url=url),
    stores=stores.outputs, app_image=pointer if cfg.app.container else None,
    image_repository_url=app_image.repository_url if app_image else None),
    expected=outputs.expected_names(cfg))
