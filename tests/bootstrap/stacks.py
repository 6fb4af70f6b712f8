"""The stacks the bootstrap tests render: the repo's stack files plus variants that between
them take every branch of the templates (each TLS mode, load balancer, git app, secrets, hooks,
mirrors and CAs, Ubuntu)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile

import yaml

from components.bootstrap import RenderedBootstrap
from components.config import PROJECT_DIR, StackConfig, parse, parse_stack
from tests.cases import ssh_key

ZONE = {"webstack:domainZone": "example.com", "webstack:domainHostname": "app.example.com"}

VARIANTS: dict[str, dict[str, str]] = {
    "plain": {"webstack:appEnv": json.dumps(["APP_GREETING=Hello from the loopback run"])},
    "selfsigned": {"webstack:tlsMode": "selfsigned", "webstack:appMaxBodyMib": "1"},
    "letsencrypt": {**ZONE, "webstack:tlsMode": "letsencrypt",
                    "webstack:domainExtraNames": json.dumps(["www.example.com"]),
                    "webstack:tlsEmail": "ops@example.com"},
    "alb-acm": {**ZONE, "webstack:tlsMode": "acm", "webstack:serverCount": "2",
                "webstack:networkCreateVpc": "true", "webstack:networkCidr": "10.42.0.0/16"},
    "full": {
        "webstack:appName": "shop",
        "webstack:appRepo": "https://git.example.com/acme/shop.git",
        "webstack:appRef": "v1.2.3",
        "webstack:appPath": "src/site",
        "webstack:appWsgi": "site.wsgi:application",
        "webstack:appRequirements": "requirements/prod.txt",
        "webstack:appStaticUrl": "",
        "webstack:appWorkers": "3",
        "webstack:appEnv": json.dumps(["DJANGO_SETTINGS_MODULE=site.settings.prod",
                                       "APP_GREETING=it's \"quoted\" $HOME `id` ü"]),
        "webstack:appSecrets": json.dumps(["DATABASE_URL=/shop/prod/database-url",
                                           "SECRET_KEY=/shop/prod/secret-key"]),
        "webstack:appPreStart": json.dumps(["python manage.py migrate --noinput",
                                            "python manage.py collectstatic --noinput"]),
        "webstack:serverOs": "ubuntu-24.04",
        "webstack:aptMirror": "https://mirror.example.com/ubuntu",
        "webstack:pipIndexUrl": "https://pypi.example.com/simple/",
        "webstack:extraCaCertFiles": json.dumps(["tests/bootstrap/data/test-ca.pem"]),
        "webstack:sshPublicKey": ssh_key(comment="ops@example"),
    },
}


def make_cfg(raw: dict[str, str], stack: str = "dev") -> StackConfig:
    return parse(raw, project="webstack", stack=stack, region="us-east-1",
                 supported_regions=("us-east-1",))


def stack_files() -> list[str]:
    """Stack names with a Pulumi.<stack>.yaml in the repo."""
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in PROJECT_DIR.glob("Pulumi.*.yaml"))


def all_configs() -> dict[str, StackConfig]:
    """Every variant, and every stack file as `stack:<name>`."""
    configs = {name: make_cfg(raw) for name, raw in VARIANTS.items()}
    configs.update({f"stack:{s}": parse_stack(s) for s in stack_files()})
    return configs


def shell_scripts(files: dict[str, str]) -> dict[str, str]:
    """The rendered files that are shell scripts (by their #! line)."""
    return {p: t for p, t in files.items() if t.startswith(("#!/bin/bash", "#!/bin/sh"))}



def shipped(rendered: RenderedBootstrap, root: str = "") -> dict[str, str]:
    """What a server gets, read the way it reads it: the user-data's write_files (as cloud-init
    decodes them) and the artefact's members (as the fetcher unpacks them under `root`)."""
    out = {}
    for f in yaml.safe_load(rendered.user_data).get("write_files", []):
        content = f["content"]
        if f.get("encoding") == "gz+b64":
            content = gzip.decompress(base64.b64decode(content)).decode()
        out[f["path"]] = content
    with tarfile.open(fileobj=io.BytesIO(rendered.artefact), mode="r:") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None and member.isfile()
            out[f"{root}/{member.name}"] = handle.read().decode()
    return out
