"""A private appRepo in the program: its settings' errors (each named, before any resource),
the deploy key or token stored as a SecureString from a Pulumi secret and nowhere else (inputs
outside secret envelopes, outputs, user-data, artefact), the role reading exactly its
parameters, the firewall opening the URL's ssh port."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from components import bootstrap, config, gitremote
from components.config.model import RepoCredential
from components.firewall import rules
from components.topology import derive
from devtools.mockrun import run_program, stack_config
from tests.cases import arr

REGIONS = ("us-east-1",)
SSH_URL = "ssh://git@git.example.com:2222/acme/shop.git"


def ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def deploy_key(cipher: bytes = b"none") -> str:
    """An openssh-key-v1 file's shape (what the check reads: magic and cipher name)."""
    blob = b"openssh-key-v1\x00" + ssh_string(cipher) + ssh_string(b"none") + ssh_string(b"")
    body = base64.b64encode(blob + b"\x00\x00\x00\x01" + b"K3YM4TER14L" * 20).decode()
    lines = "\n".join(body[i:i + 70] for i in range(0, len(body), 70))
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{lines}\n-----END OPENSSH PRIVATE KEY-----\n"


KEY = deploy_key()
KEY_LINE = KEY.splitlines()[3]  # a line of the key's body: never anywhere but in a secret
HOST_KEY = "ssh-ed25519 " + base64.b64encode(ssh_string(b"ssh-ed25519") + ssh_string(
    b"\x07" * 32)).decode()
PINNED = f"[git.example.com]:2222 {HOST_KEY}"
SECRET = frozenset({"webstack:appRepoSshKey", "webstack:appRepoToken"})


def parse(overrides: dict[str, str], secret: frozenset[str] = SECRET) -> config.StackConfig:
    raw = stack_config("dev", {f"webstack:{k}": v for k, v in overrides.items()})
    return config.parse(raw, project="webstack", stack="dev", region="us-east-1",
                        supported_regions=REGIONS, secret_keys=secret)


def problems(overrides: dict[str, str], secret: frozenset[str] = SECRET) -> str:
    with pytest.raises(config.ConfigError) as err:
        parse(overrides, secret)
    assert KEY_LINE not in str(err.value) and "s3cr3t-t0ken" not in str(err.value)
    return str(err.value)


def hashed(name: str) -> str:
    salt = b"0123456789abcdefghij"
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


SSH = {"appRepo": SSH_URL, "appRepoSshKey": KEY, "appRepoHostKeys": arr(PINNED)}


def test_an_ssh_repo_with_its_key_and_host_keys() -> None:
    cfg = parse(SSH)
    assert cfg.app.repo_credential == RepoCredential(
        "appRepoSshKey", "/webstack/dev/hello/repo/ssh-key")
    assert cfg.app.repo_host_keys == (PINNED,)
    assert KEY_LINE not in repr(cfg)
    scp = parse({"appRepo": "git@github.com:acme/shop.git", "appRepoSshKey": KEY,
                 "appRepoHostKeys": arr(f"github.com,140.82.112.3 {HOST_KEY}",
                                        f"{hashed('github.com')} {HOST_KEY} a comment")})
    assert scp.app.repo_credential is not None and len(scp.app.repo_host_keys) == 2


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"appRepo": SSH_URL, "appRepoHostKeys": arr(PINNED)},
     ["webstack:appRepoSshKey is not set", "pulumi config set --secret webstack:appRepoSshKey "
      '-- "$(cat deploy_key)"']),
    ({"appRepo": SSH_URL, "appRepoSshKey": KEY},
     ["webstack:appRepoHostKeys is empty", "ssh-keyscan -p 2222 git.example.com"]),
    ({"appRepo": "https://git.example.com/acme/shop.git", "appRepoSshKey": KEY,
      "appRepoHostKeys": arr(PINNED)},
     ["webstack:appRepoSshKey is set but webstack:appRepo = 'https://",
      "webstack:appRepoHostKeys is set but webstack:appRepo"]),
    ({"appRepoSshKey": KEY}, ["webstack:appRepoSshKey is set but webstack:appRepo = ''"]),
    ({"appRepoHostKeys": arr(PINNED)}, ["webstack:appRepoHostKeys is set but"]),
    ({"appRepoToken": "s3cr3t-t0ken"}, ["webstack:appRepoToken is set but webstack:appRepo = ''"]),
    ({**SSH, "appRepoToken": "s3cr3t-t0ken"},
     ["webstack:appRepoToken is set but webstack:appRepo = 'ssh://"]),
    ({"appRepo": "https://git.example.com/a.git", "appRepoTokenUser": "oauth2"},
     ["webstack:appRepoTokenUser is set without webstack:appRepoToken"]),
    ({"appRepo": "https://git.example.com/a.git", "appRepoToken": "two words"},
     ["webstack:appRepoToken (value hidden): expected 1-1024 printable ASCII"]),
    ({**SSH, "appRepoSshKey": "ssh-ed25519 AAAA a public key"},
     ["webstack:appRepoSshKey (value hidden): expected an OpenSSH private key"]),
    ({**SSH, "appRepoSshKey": deploy_key(b"aes256-ctr")},
     ["this one has a passphrase", "ssh-keygen -p -N '' -f deploy_key"]),
    ({**SSH, "appRepoHostKeys": arr(f"git.example.com {HOST_KEY}")},
     ["webstack:appRepoHostKeys = 'git.example.com ssh-ed25519",
      "expected a line for [git.example.com]:2222, the host of appRepo"]),
    ({**SSH, "appRepoHostKeys": arr(f"[git.example.com]:2222 ssh-rsa {HOST_KEY.split()[1]}")},
     ["webstack:appRepoHostKeys", "the key is not a ssh-rsa key"]),
    ({**SSH, "appRepoHostKeys": arr("[git.example.com]:2222 ssh-ed25519")},
     ["webstack:appRepoHostKeys", "expected a known_hosts line 'HOST KEYTYPE BASE64KEY'"]),
    ({**SSH, "appRepoHostKeys": arr(f"{hashed('other.example.com')} {HOST_KEY}")},
     ["expected a line for [git.example.com]:2222"]),
], ids=["ssh-no-key", "ssh-no-host-keys", "key-with-https", "key-without-repo",
        "host-keys-without-repo", "token-without-repo", "token-with-ssh",
        "token-user-without-token", "token-form", "key-form", "key-passphrase",
        "host-key-port", "host-key-type", "host-key-form", "host-key-hashed-other"])
def test_each_mistake_is_named(overrides: dict[str, str], expected: list[str]) -> None:
    message = problems(overrides)
    for text in expected:
        assert text in message, message


@pytest.mark.parametrize(("key", "value", "how"), [
    ("appRepoSshKey", KEY, '`pulumi config set --secret webstack:appRepoSshKey -- '
                           '"$(cat deploy_key)"`'),
    ("appRepoToken", "s3cr3t-t0ken", "`pulumi config set --secret webstack:appRepoToken "
                                     "(it prompts)`")])
def test_a_plaintext_credential_is_refused_with_the_command_to_set_it(
        key: str, value: str, how: str) -> None:
    url = SSH if key == "appRepoSshKey" else {"appRepo": "https://git.example.com/a.git"}
    message = problems({**url, key: value}, frozenset())
    assert f"webstack:{key} is stored in plaintext: expected it set with {how}" in message


def test_the_firewall_opens_the_urls_ssh_port() -> None:
    cfg = parse(SSH)
    egress = {r.port for r in rules(derive(cfg), cfg.access, cfg.app.repo)
              if r.direction == "egress"}
    assert egress == {80, 443, 2222}
    assert gitremote.ssh_remote("git@github.com:a/b.git") == gitremote.SshRemote("github.com", 22)
    assert gitremote.ssh_remote("https://github.com/a/b.git") is None


def test_the_rendered_files_name_the_parameter_and_pin_the_host_never_the_key() -> None:
    cfg = parse(SSH)
    rendered = bootstrap.render(cfg)
    assert KEY_LINE not in rendered.user_data and KEY_LINE.encode() not in rendered.artefact
    settings = rendered.files["/usr/local/lib/webstack/hello/settings.env"]
    assert 'REPO_SSH_KEY_PARAMETER="/webstack/dev/hello/repo/ssh-key"' in settings
    assert 'KNOWN_HOSTS="/etc/webstack/hello/known_hosts"' in settings
    assert rendered.files["/etc/webstack/hello/known_hosts"].splitlines()[1:] == [PINNED]
    assert "/usr/local/lib/webstack/hello/ssm-get" in rendered.files


@pytest.mark.parametrize(("repo", "key", "value", "parameter"), [
    (SSH, "appRepoSshKey", KEY, "/webstack/dev/hello/repo/ssh-key"),
    ({"appRepo": "https://git.example.com/a.git"}, "appRepoToken", "s3cr3t-t0ken",
     "/webstack/dev/hello/repo/token")])
def test_the_program_stores_the_credential_as_a_secret_and_grants_exactly_it(
        repo: dict[str, str], key: str, value: str, parameter: str, aws_env_module: str) -> None:
    """The whole program under mocks (sizing asks moto: `aws_env_module`)."""
    settings = stack_config("dev", {**{f"webstack:{k}": v for k, v in repo.items()},
                                    f"webstack:{key}": value})
    run = run_program("dev", settings, secret_keys=[f"webstack:{key}"])
    if run.error is not None:
        raise run.error
    (stored,) = [r for r in run.of_type("aws:ssm/parameter:Parameter")
                 if r.inputs["name"] == parameter]
    assert stored.inputs["type"] == "SecureString"
    assert stored.inputs["value"] == {"4dabf18193072939515e22adb298388d":
                                      "1b47061264138c4ac30d75fd1eb44270",
                                      "value": value.strip()}
    needle = KEY_LINE if key == "appRepoSshKey" else value
    for reg in run.resources:
        if reg is not stored:
            assert needle not in json.dumps(reg.inputs), (reg.type, reg.name)
    assert needle not in json.dumps(run.outputs)
    (policy,) = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy")
                 if r.name.endswith("-parameters")]
    read, decrypt = json.loads(policy.inputs["policy"])["Statement"]
    arns = [f"arn:aws:ssm:us-east-1:123456789012:parameter/webstack/dev/hello/{n}"
            for n in ("release-ref", parameter.rsplit("/hello/", 1)[1])]
    assert read["Resource"] == arns
    assert decrypt["Condition"]["StringEquals"]["kms:EncryptionContext:PARAMETER_ARN"] == arns
