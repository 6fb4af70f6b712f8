"""Bad settings and what the error must say: shared by the parser tests and the program tests
(which also assert that nothing was registered)."""

from __future__ import annotations

import base64
import json
import random


def ssh_key(kind: str = "ssh-ed25519", *, bits: int = 2048, comment: str = "me@laptop",
            seed: int = 1) -> str:
    """A well-formed OpenSSH public key line (random key material of the right shape)."""
    rng = random.Random(seed)

    def field(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data
    if kind == "ssh-rsa":
        modulus = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        body = field(b"\x01\x00\x01") + field(b"\0" + modulus.to_bytes(bits // 8, "big"))
    else:
        body = field(rng.randbytes(32))
    blob = base64.b64encode(field(kind.encode()) + body).decode()
    return f"{kind} {blob} {comment}".rstrip()


ED25519_KEY = ssh_key()

GOOD_ZONE = {"webstack:domainZone": "example.com", "webstack:domainHostname": "app.example.com"}


def arr(*items: str) -> str:
    return json.dumps(list(items))


# (id, overrides on top of the dev stack file, substrings the one error message must contain)
VPC = {"webstack:networkCreateVpc": "true"}  # a database's or cache's private subnets
BAD_INPUTS: list[tuple[str, dict[str, str], tuple[str, ...]]] = [
    ("app-name-upper", {"webstack:appName": "Hello"}, ("webstack:appName = 'Hello'",)),
    ("app-name-digit-first", {"webstack:appName": "1app"}, ("webstack:appName",)),
    ("app-name-too-long", {"webstack:appName": "a" * 40}, ("webstack:appName", "1-32 chars")),
    ("app-name-shell", {"webstack:appName": "app;rm -rf /"}, ("webstack:appName",)),
    ("repo-not-url", {"webstack:appRepo": "not a url"}, ("webstack:appRepo", "a git URL")),
    ("repo-shell", {"webstack:appRepo": "https://example.com/x.git$(id)"}, ("webstack:appRepo",)),
    ("repo-file-scheme", {"webstack:appRepo": "file:///etc"}, ("webstack:appRepo",)),
    ("ref-space", {"webstack:appRef": "main branch"}, ("webstack:appRef", "git tag")),
    ("ref-dotdot", {"webstack:appRef": "v1..v2"}, ("webstack:appRef",)),
    ("ref-dash", {"webstack:appRef": "--upload-pack=evil"}, ("webstack:appRef",)),
    ("app-path-escape", {"webstack:appPath": "../etc"}, ("webstack:appPath",)),
    ("wsgi-no-colon", {"webstack:appWsgi": "app.application"},
     ("webstack:appWsgi = 'app.application'", "module:callable")),
    ("wsgi-bad-module", {"webstack:appWsgi": "my-app:app"}, ("webstack:appWsgi",)),
    ("wsgi-attribute-path", {"webstack:appWsgi": "app:factory.app"},
     ("webstack:appWsgi = 'app:factory.app'", "module:callable")),
    ("health-relative", {"webstack:appHealthPath": "healthz"},
     ("webstack:appHealthPath", "URL path")),
    ("static-url-no-slash", {"webstack:appStaticUrl": "/static"}, ("webstack:appStaticUrl",)),
    ("workers-negative", {"webstack:appWorkers": "-1"}, ("webstack:appWorkers", "0 to 64")),
    ("env-bad-key", {"webstack:appEnv": arr("lower=1")}, ("webstack:appEnv", "KEY=value")),
    ("env-newline", {"webstack:appEnv": arr("A=line1\nline2")}, ("webstack:appEnv",)),
    ("env-duplicate", {"webstack:appEnv": arr("A=1", "A=2")}, ("A is given twice",)),
    ("env-not-list", {"webstack:appEnv": "A=1"}, ("webstack:appEnv", "a list of strings")),
    ("secret-bad-name", {"webstack:appSecrets": arr("DB=/bad name")},
     ("webstack:appSecrets", "/ssm/parameter/name")),
    ("secret-and-env", {"webstack:appEnv": arr("DB=x"), "webstack:appSecrets": arr("DB=/p/db")},
     ("both set DB",)),
    ("vcpus-zero", {"webstack:serverVcpus": "0"}, ("webstack:serverVcpus = '0'", "1 to 192")),
    ("vcpus-word", {"webstack:serverVcpus": "two"}, ("webstack:serverVcpus = 'two'",)),
    ("memory-negative", {"webstack:serverMemoryGib": "-4"}, ("webstack:serverMemoryGib",)),
    ("disk-too-small", {"webstack:serverDiskGib": "4"}, ("webstack:serverDiskGib", "8 to 16384")),
    ("count-zero", {"webstack:serverCount": "0"}, ("webstack:serverCount",)),
    ("count-huge", {"webstack:serverCount": "500"}, ("webstack:serverCount",)),
    ("os-unknown", {"webstack:serverOs": "centos-7"},
     ("webstack:serverOs = 'centos-7'", "debian-12, ubuntu-24.04")),
    ("arch-unknown", {"webstack:serverArch": "aarch64"}, ("webstack:serverArch", "x86_64, arm64")),
    ("burstable-not-bool", {"webstack:serverBurstable": "yes"},
     ("webstack:serverBurstable", "true or false")),
    ("instance-type-garbage", {"webstack:serverInstanceType": "big one"},
     ("webstack:serverInstanceType",)),
    ("cidr-public", {**VPC, "webstack:networkCidr": "8.8.0.0/16"},
     ("webstack:networkCidr", "private IPv4 CIDR")),
    ("cidr-malformed", {**VPC, "webstack:networkCidr": "10.0.0/16"},
     ("webstack:networkCidr",)),
    ("cidr-too-small", {**VPC, "webstack:networkCidr": "10.0.0.0/28"},
     ("webstack:networkCidr", "/16 to /24")),
    ("az-count-one", {"webstack:networkAzCount": "1"}, ("webstack:networkAzCount",)),
    ("ssh-world-v4", {"webstack:adminCidrs": arr("0.0.0.0/0")},
     ("webstack:adminCidrs = '0.0.0.0/0'", "never allowed")),
    ("ssh-world-v6", {"webstack:adminCidrs": arr("::/0")}, ("webstack:adminCidrs = '::/0'",)),
    ("ssh-host-bits", {"webstack:adminCidrs": arr("203.0.113.7/24")},
     ("did you mean 203.0.113.0/24",)),
    ("ssh-too-wide", {"webstack:adminCidrs": arr("0.0.0.0/4")}, ("at most /8",)),
    ("ssh-key-garbage", {"webstack:sshPublicKey": "hello"}, ("webstack:sshPublicKey",)),
    ("ssh-key-ecdsa", {"webstack:sshPublicKey": ssh_key("ecdsa-sha2-nistp256")},
     ("webstack:sshPublicKey", "ssh-ed25519, or ssh-rsa of 2048-4096 bits")),
    ("ssh-key-security-key", {"webstack:sshPublicKey": ssh_key("sk-ssh-ed25519@openssh.com")},
     ("webstack:sshPublicKey",)),
    ("ssh-key-rsa-1024", {"webstack:sshPublicKey": ssh_key("ssh-rsa", bits=1024)},
     ("webstack:sshPublicKey", "2048-4096 bits")),
    ("ssh-key-type-mismatch", {"webstack:sshPublicKey": "ssh-rsa " + ED25519_KEY.split()[1]},
     ("webstack:sshPublicKey",)),
    ("ssh-key-truncated", {"webstack:sshPublicKey": ED25519_KEY.split()[0] + " "
                           + ED25519_KEY.split()[1][:40]}, ("webstack:sshPublicKey",)),
    ("image-not-ami", {"webstack:serverImage": "debian-12"},
     ("webstack:serverImage = 'debian-12'", "an AMI id")),
    ("hostname-outside-zone", {**GOOD_ZONE, "webstack:domainHostname": "app.example.org"},
     ("webstack:domainHostname = 'app.example.org'", "inside the zone example.com")),
    ("extra-outside-zone", {**GOOD_ZONE, "webstack:domainExtraNames": arr("www.other.net")},
     ("webstack:domainExtraNames",)),
    ("hostname-without-zone", {"webstack:domainHostname": "app.example.com"},
     ("webstack:domainZone is empty",)),
    ("hostname-bad-label", {**GOOD_ZONE, "webstack:domainHostname": "bad_name.example.com"},
     ("webstack:domainHostname", "fully-qualified DNS name")),
    ("tls-unknown", {"webstack:tlsMode": "ssl"}, ("webstack:tlsMode = 'ssl'",)),
    ("letsencrypt-count", {**GOOD_ZONE, "webstack:tlsMode": "letsencrypt",
                           "webstack:tlsEmail": "ops@example.com", "webstack:serverCount": "2"},
     ("serverCount = 2", "expected serverCount 1")),
    ("letsencrypt-no-email", {**GOOD_ZONE, "webstack:tlsMode": "letsencrypt"},
     ("webstack:tlsEmail is empty",)),
    ("acm-no-domain", {"webstack:tlsMode": "acm"}, ("needs a name",)),
    ("acm-long-hostname", {"webstack:domainZone": "example.com", "webstack:tlsMode": "acm",
                           "webstack:domainHostname": "h" * 53 + ".example.com"},
     ("webstack:domainHostname", "at most 64 characters with tlsMode acm")),
    ("selfsigned-count", {"webstack:tlsMode": "selfsigned", "webstack:serverCount": "3"},
     ("tlsMode = 'selfsigned' with serverCount = 3",)),
    ("tag-reserved", {"webstack:tags": arr("aws:owner=me")}, ("webstack:tags", "reserved")),
    ("tag-no-equals", {"webstack:tags": arr("Owner")}, ("webstack:tags", "Key=Value")),
    ("mirror-not-url", {"webstack:aptMirror": "ftp://mirror"}, ("webstack:aptMirror",)),
    ("ca-file-missing", {"webstack:extraCaCertFiles": arr("no/such.pem")},
     ("webstack:extraCaCertFiles = 'no/such.pem'", "PEM file")),
    ("typo-key", {"webstack:serverCpus": "4"},
     ("webstack:serverCpus is not a setting",)),
    ("region-unsupported", {"aws:region": "mars-north-1"}, ("aws:region = 'mars-north-1'",)),
    ("min-above-count", {"webstack:serverMinCount": "3"},
     ("serverMinCount = 3 is above serverCount = 1",)),
    ("max-below-count", {"webstack:serverCount": "4", "webstack:serverMaxCount": "2"},
     ("serverMaxCount = 2 is below serverCount = 4",)),
    ("cpu-target-low", {"webstack:scalingCpuTarget": "5"},
     ("webstack:scalingCpuTarget", "10 to 90")),
    ("refresh-over-100", {"webstack:refreshMinHealthyPercent": "150"},
     ("webstack:refreshMinHealthyPercent",)),
    ("letsencrypt-autoscaling", {**GOOD_ZONE, "webstack:tlsMode": "letsencrypt",
                                 "webstack:tlsEmail": "ops@example.com",
                                 "webstack:serverMaxCount": "3"},
     ("serverMaxCount = 3", "no autoscaling")),
    ("alert-email-bad", {"webstack:alertEmails": arr("ops@")}, ("webstack:alertEmails = 'ops@'",)),
    ("log-retention-odd", {"webstack:logRetentionDays": "10"},
     ("webstack:logRetentionDays = '10'", "14, 30")),
    ("releases-kept-zero", {"webstack:appReleasesKept": "0"}, ("webstack:appReleasesKept",)),
    ("secret-values-plaintext", {"webstack:appSecretValues": arr("API_KEY=hunter2-plain")},
     ("appSecretValues is stored in plaintext", "--secret")),
    ("secret-values-bad-key", {"webstack:appSecretValues": arr("api key=hunter2-plain")},
     ("appSecretValues[0] (value hidden)",)),
    ("secret-values-malformed", {"webstack:appSecretValues": "hunter2-plain"},
     ("webstack:appSecretValues = (value hidden)",)),
    ("secret-values-twice", {"webstack:appSecrets": arr("API_KEY=/x/api"),
                             "webstack:appSecretValues": arr("API_KEY=hunter2-plain")},
     ("both set API_KEY",)),
    # databases and caches
    ("database-default-vpc", {"webstack:database": "postgres"},
     ("webstack:database = 'postgres' needs private subnets", "networkCreateVpc true")),
    ("cache-default-vpc", {"webstack:cache": "valkey"}, ("webstack:cache = 'valkey'",
                                                         "networkCreateVpc true")),
    ("database-engine", {"webstack:database": "oracle", **VPC}, ("webstack:database = 'oracle'",
                                                              "one of , postgres, mysql")),
    ("database-version", {"webstack:database": "postgres", "webstack:databaseVersion": "9.6",
                          **VPC}, ("webstack:databaseVersion = '9.6'", "14, 15, 16, 17")),
    ("database-version-alone", {"webstack:databaseVersion": "16"},
     ("webstack:databaseVersion is set but webstack:database is empty",)),
    ("database-and-byo", {"webstack:database": "mysql", **VPC,
                          "webstack:databaseUrlSecret": "shop/db"},
     ("webstack:database = 'mysql' and webstack:databaseUrlSecret are both set",)),
    ("database-url-secret-shape", {"webstack:databaseUrlSecret": "shop db; rm"},
     ("webstack:databaseUrlSecret = 'shop db; rm'", "Secrets Manager secret's name")),
    ("database-storage-ceiling", {"webstack:database": "postgres", **VPC,
                                  "webstack:databaseStorageGib": "100",
                                  "webstack:databaseMaxStorageGib": "105"},
     ("webstack:databaseMaxStorageGib = 105", "at least 110")),
    ("database-reserved-user", {"webstack:database": "postgres", **VPC,
                                "webstack:databaseUser": "rdsadmin"},
     ("webstack:databaseUser = 'rdsadmin'",)),
    ("database-name-shape", {"webstack:database": "postgres", **VPC,
                             "webstack:databaseName": "my-app"},
     ("webstack:databaseName = 'my-app'", "letters, digits and _")),
    ("database-variable-taken", {"webstack:databaseUrlSecret": "shop/db",
                                 "webstack:appEnv": '["DATABASE_URL=sqlite://"]'},
     ("webstack:appEnv/appSecrets set DATABASE_URL",)),
    ("cache-nodes", {"webstack:cache": "memcached", **VPC, "webstack:cacheNodes": "9"},
     ("webstack:cacheNodes = '9'", "1 to 6")),
    ("static-migrate", {"webstack:appKind": "static", "webstack:appSource":
                        "examples/static-site", "webstack:appStaticDir": "public",
                        "webstack:appMigrate": '["python manage.py migrate"]'},
     ("webstack:appMigrate is set but webstack:appKind is 'static'",)),
    # --- runtimes and servers ---
    ("runtime-choice", {"webstack:appRuntime": "kubernetes"},
     ("webstack:appRuntime = 'kubernetes'", "one of venv, docker")),
    ("server-choice", {"webstack:appServer": "waitress"},
     ("webstack:appServer = 'waitress'", "one of gunicorn, uwsgi")),
    ("image-upper-case", {"webstack:appRuntime": "docker",
                          "webstack:appImage": "ghcr.io/Acme/shop:1"},
     ("webstack:appImage = 'ghcr.io/Acme/shop:1'", "lowercase name")),
    ("image-shell", {"webstack:appRuntime": "docker", "webstack:appImage": "shop:1; rm -rf /"},
     ("webstack:appImage", "an image reference")),
    ("image-short-digest", {"webstack:appRuntime": "docker",
                            "webstack:appImage": "ghcr.io/acme/shop@sha256:abc"},
     ("webstack:appImage", "@sha256:<64 hex>")),
    ("image-without-docker", {"webstack:appImage": "ghcr.io/acme/shop:1"},
     ("webstack:appImage is set but webstack:appRuntime is 'venv'",)),
    ("docker-static", {"webstack:appRuntime": "docker", "webstack:appKind": "static",
                       "webstack:appSource": "examples/static-site",
                       "webstack:appStaticDir": "public"},
     ("webstack:appRuntime is 'docker' but webstack:appKind is 'static'",)),
    ("docker-build-commands", {"webstack:appRuntime": "docker", "webstack:appImage": "nginx:1",
                               "webstack:appBuild": '["make"]'},
     ("webstack:appBuild is set but webstack:appRuntime is 'docker'", "Dockerfile")),
    ("docker-uwsgi", {"webstack:appRuntime": "docker", "webstack:appImage": "nginx:1",
                      "webstack:appServer": "uwsgi"},
     ("webstack:appServer is set but webstack:appRuntime is 'docker'",)),
    ("docker-no-dockerfile", {"webstack:appRuntime": "docker"},
     ("has no Dockerfile", "webstack:appDockerfile")),
    ("docker-image-and-source", {"webstack:appRuntime": "docker", "webstack:appImage": "nginx:1",
                                 "webstack:appSource": "examples/hello-app"},
     ("webstack:appImage and webstack:appSource are both set",)),
    ("docker-image-and-dockerfile", {"webstack:appRuntime": "docker",
                                     "webstack:appImage": "nginx:1",
                                     "webstack:appDockerfile": "docker/Dockerfile"},
     ("webstack:appImage and webstack:appDockerfile are both set",)),
    ("image-credentials-ecr", {"webstack:appRuntime": "docker", "webstack:appImage":
                               "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:1",
                               "webstack:appImageCredentialsSecret": "shop/registry"},
     ("webstack:appImageCredentialsSecret is set for an ECR image",)),
    ("image-credentials-shape", {"webstack:appRuntime": "docker", "webstack:appImage": "nginx:1",
                                 "webstack:appImageCredentialsSecret": "my secret"},
     ("webstack:appImageCredentialsSecret = 'my secret'", "Secrets Manager secret's name")),
    ("container-port", {"webstack:appRuntime": "docker", "webstack:appImage": "nginx:1",
                        "webstack:appContainerPort": "0"},
     ("webstack:appContainerPort = '0'", "1 to 65535")),
    ("static-uwsgi", {"webstack:appKind": "static", "webstack:appSource":
                      "examples/static-site", "webstack:appStaticDir": "public",
                      "webstack:appServer": "uwsgi"},
     ("webstack:appServer is 'uwsgi' but webstack:appKind is 'static'",)),
]

# Values that must never appear in any message, whatever else is wrong.
SECRET_VALUES = ("hunter2-plain",)

# The ci stack (components/ci.py) of a repository deploying two stacks, state in S3.
CI_SETTINGS = {"aws:region": "us-east-1", "webstack-ci:repository": "acme/shop",
               "webstack-ci:appName": "shop", "webstack-ci:stacks": '["staging", "prod"]',
               "webstack-ci:stateBucket": "acme-pulumi-state"}
