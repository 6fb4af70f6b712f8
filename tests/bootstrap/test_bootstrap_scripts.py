"""The scripts the user-data installs, run for real on this machine against local stand-ins:
a local git repository for the app, openssl for the certificate, and a 127.0.0.1 server playing
the instance metadata service (IMDSv2 only) and SSM (checking the SigV4 signature with
botocore's own signer)."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from unittest import mock

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from components import naming
from components.bootstrap import Endpoints, Target, render
from components.config import SAMPLE_APP_DIR
from components.naming import Paths
from components.parameters import TLS_PLACEHOLDER
from devtools.localrun import install, local_target, read_env_file
from tests.cases import GOOD_ZONE as ZONE
from tests.http_site import serving
from tests.variants import make_cfg

pytestmark = pytest.mark.realtools

REPO_URL = "https://git.example.com/acme/hello.git"
CREDS = {"AccessKeyId": "ASIATESTKEY", "SecretAccessKey": "test/secret+key",
         "Token": "session-token"}


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                          env=env)


def installed(raw: dict[str, str], root: Path, aws: str = "") -> Paths:
    """The rendered files under `root`; `aws`: the URL of an IMDS + SSM fake the settings name
    as the server's endpoints."""
    cfg = make_cfg(raw)
    target = replace(local_target(root, 8080, 8443, root / "venv"),
                     endpoints=Endpoints(imds=aws, ssm=aws))
    install(render(cfg, target), target)
    return Paths(target.root, cfg.app.name)


# --- fetch-app ---------------------------------------------------------------------------------

@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A git repository holding the sample app, tagged v1, with one more commit on main."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: scripts/setup-system.sh (make system) installs it")
    repo = tmp_path / "origin"
    shutil.copytree(SAMPLE_APP_DIR, repo, ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "--quiet", "--initial-branch=main"], ["add", "."],
                 ["commit", "--quiet", "-m", "v1"], ["tag", "v1"]):
        subprocess.run([*git, *args], check=True, timeout=30)
    (repo / "NEWS").write_text("after v1\n")
    for args in (["add", "."], ["commit", "--quiet", "-m", "after v1"]):
        subprocess.run([*git, *args], check=True, timeout=30)
    return repo


def git_env(tmp_path: Path, origin: Path) -> dict[str, str]:
    """The rendered URL, answered by the local repository (git's own url rewriting)."""
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"url.file://{origin}.insteadOf", "GIT_CONFIG_VALUE_0": REPO_URL}


def tree(src: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(src)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in src.rglob("*") if p.is_file() and ".git" not in p.parts}


def rev(repo: Path, ref: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", f"{ref}^{{commit}}"],
                          capture_output=True, text=True, check=True, timeout=30).stdout.strip()


@pytest.mark.parametrize("ref", ["v1", "main", "sha-of-v1"])
def test_fetch_app_resolves_the_ref_and_exports_exactly_its_tree(
        ref: str, origin: Path, tmp_path: Path) -> None:
    ref = rev(origin, "v1") if ref == "sha-of-v1" else ref
    paths = installed({"webstack:appRepo": REPO_URL}, tmp_path / "root")
    env = git_env(tmp_path, origin)
    Path(paths.home).mkdir(parents=True)
    first = run([f"{paths.lib}/fetch-app", "resolve", ref], env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == rev(origin, ref) + "\n"
    again = run([f"{paths.lib}/fetch-app", "resolve", ref], env)
    assert again.stdout == first.stdout  # the cache answers the same commit again
    dest = tmp_path / "release" / "src"
    export = run([f"{paths.lib}/fetch-app", "export", first.stdout.strip(), str(dest)], env)
    assert export.returncode == 0, export.stderr
    exported = tree(dest)
    assert exported["app.py"][0] == (SAMPLE_APP_DIR / "app.py").read_bytes()
    assert ("NEWS" in exported) == (ref == "main")
    assert not (dest / ".git").exists()  # a release is files, not a checkout


def test_fetch_app_fails_on_an_unknown_ref(origin: Path, tmp_path: Path) -> None:
    paths = installed({"webstack:appRepo": REPO_URL}, tmp_path / "root")
    Path(paths.home).mkdir(parents=True)
    proc = run([f"{paths.lib}/fetch-app", "resolve", "no-such-tag"], git_env(tmp_path, origin))
    assert proc.returncode != 0
    assert "no-such-tag" in proc.stderr and proc.stdout == ""


# --- pre-start hooks -------------------------------------------------------------------------

def test_pre_start_hooks_run_in_order_in_the_app_dir_with_the_venv_first(tmp_path: Path) -> None:
    hooks = ["python -c 'import sys; print(sys.prefix)' > hook-prefix.txt",
             "pwd > hook-cwd.txt", "echo second >> hook-cwd.txt"]
    raw = {"webstack:appPreStart": json.dumps(hooks)}
    root = tmp_path / "root"
    cfg = make_cfg(raw)
    # A server's layout: each release has its own venv (the release script passes its dir).
    target = Target(root=str(root), http_port=8080, https_port=8443, ec2=False)
    install(render(cfg, target), target)
    paths = Paths(target.root, cfg.app.name)
    release = Path(paths.releases) / "r1"
    (release / "src").mkdir(parents=True)
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(release / "venv")],
                   check=True, timeout=60)
    proc = run([f"{paths.lib}/pre-start", str(release)], {"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    src = release / "src"
    assert (src / "hook-prefix.txt").read_text().strip() == str(release / "venv")
    assert (src / "hook-cwd.txt").read_text().splitlines() == [str(src), "second"]
    # Without an argument (the boot-time unit): the current release.
    Path(paths.current).symlink_to("releases/r1")
    (src / "hook-cwd.txt").unlink()
    proc = run([f"{paths.lib}/pre-start"], {"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert (src / "hook-cwd.txt").read_text().splitlines() == [paths.src, "second"]


def test_a_failing_pre_start_hook_stops_the_rest(tmp_path: Path) -> None:
    hooks = ["false", "touch should-not-exist"]
    paths = installed({"webstack:appPreStart": json.dumps(hooks)}, tmp_path / "root")
    Path(paths.src).mkdir(parents=True)
    assert run([f"{paths.lib}/pre-start"], {"PATH": "/usr/bin:/bin"}).returncode != 0
    assert not (Path(paths.src) / "should-not-exist").exists()


# --- tls ---------------------------------------------------------------------------------------

def test_tls_makes_a_certificate_for_the_names_once(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: scripts/setup-system.sh (make system) does it")
    raw = {**ZONE, "webstack:tlsMode": "letsencrypt", "webstack:tlsEmail": "ops@example.com"}
    paths = installed(raw, tmp_path / "root")
    assert run([f"{paths.lib}/tls"]).returncode == 0
    cert = Path(paths.etc) / "tls/fullchain.pem"
    key = Path(paths.etc) / "tls/privkey.pem"
    first = cert.read_bytes()
    assert key.stat().st_mode & 0o777 == 0o600
    text = run(["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"]).stdout
    assert "DNS:app.example.com" in text
    details = run(["openssl", "x509", "-in", str(cert), "-noout", "-text"]).stdout
    assert "id-ecPublicKey" in details and "prime256v1" in details  # not RSA: fast to make
    assert run([f"{paths.lib}/tls"]).returncode == 0
    assert cert.read_bytes() == first


# --- ssm-get (secrets, release ref) --------------------------------------------------------------

class FakeAws(BaseHTTPRequestHandler):
    """IMDSv2 (token required) and SSM GetParameters, checking SigV4 like AWS would."""

    parameters: dict[str, str] = {}
    requests: list[str] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int, body: str, ctype: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        self.requests.append(f"PUT {self.path}")
        ttl = self.headers["X-aws-ec2-metadata-token-ttl-seconds"]
        if self.path == "/latest/api/token" and ttl:
            self.reply(200, "imds-token")
        else:
            self.reply(400, "bad token request")

    def do_GET(self) -> None:
        self.requests.append(f"GET {self.path}")
        if self.headers["X-aws-ec2-metadata-token"] != "imds-token":
            self.reply(401, "IMDSv2 token required")
        elif self.path == "/latest/meta-data/iam/security-credentials/":
            self.reply(200, "web-role")
        elif self.path == "/latest/meta-data/iam/security-credentials/web-role":
            self.reply(200, json.dumps({"Code": "Success", **CREDS}))
        else:
            self.reply(404, "not found")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append(f"POST {self.path}")
        if self.headers["Authorization"] != self.expected_authorization(body):
            self.reply(403, json.dumps({"__type": "InvalidSignatureException"}))
            return
        if self.headers["X-Amz-Target"] == "AmazonSSM.GetParameter":
            name = json.loads(body)["Name"]
            if name in self.parameters:
                self.reply(200, json.dumps({"Parameter": {"Name": name, "Type": "String",
                                                          "Value": self.parameters[name]}}),
                           "application/x-amz-json-1.1")
            else:
                self.reply(400, json.dumps({"__type": "ParameterNotFound"}),
                           "application/x-amz-json-1.1")
            return
        names = json.loads(body)["Names"]
        assert len(names) <= 10 and json.loads(body)["WithDecryption"] is True
        found = [{"Name": n, "Value": self.parameters[n]} for n in names if n in self.parameters]
        missing = [n for n in names if n not in self.parameters]
        self.reply(200, json.dumps({"Parameters": found, "InvalidParameters": missing}),
                   "application/x-amz-json-1.1")

    def expected_authorization(self, body: bytes) -> str:
        """botocore's SigV4 for the same request at the same instant."""
        when = datetime.datetime.strptime(self.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        request = AWSRequest(method="POST", url=f"http://{self.headers['Host']}/", data=body,
                             headers={"Content-Type": self.headers["Content-Type"],
                                      "X-Amz-Target": self.headers["X-Amz-Target"]})
        creds = Credentials(CREDS["AccessKeyId"], CREDS["SecretAccessKey"], CREDS["Token"])
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            SigV4Auth(creds, "ssm", "us-east-1").add_auth(request)
        return str(request.headers["Authorization"])


@pytest.fixture
def fake_aws() -> Iterator[str]:
    with serving(FakeAws) as url:
        yield url


SECRET_VALUES = {f"/hello/prod/s{i:02d}": f"value {i} with \"quotes\" $HOME `id` \\ ünï"
                 for i in range(12)}
SECRET_VALUES["/hello/prod/s00"] = "-----BEGIN KEY-----\nmulti\nline\n-----END KEY-----"


def secrets_run(fake_aws: str, tmp_path: Path, mapping: dict[str, str]) -> tuple[
        subprocess.CompletedProcess[str], Path]:
    raw = {"webstack:appSecrets": json.dumps([f"{k}={v}" for k, v in mapping.items()])}
    paths = installed(raw, tmp_path / "root", aws=fake_aws)
    out = Path(paths.secrets_dir) / "secrets.env"
    proc = run(["/usr/bin/python3", f"{paths.lib}/ssm-get", f"{paths.etc}/secrets.json",
                str(out)], env={"PATH": os.environ["PATH"]})
    return proc, out


def test_fetch_secrets_signs_like_botocore_and_writes_a_root_only_env_file(
        fake_aws: str, tmp_path: Path) -> None:
    FakeAws.parameters = dict(SECRET_VALUES)
    FakeAws.requests = []
    mapping = {f"SECRET_{i:02d}": name for i, name in enumerate(sorted(SECRET_VALUES))}
    proc, out = secrets_run(fake_aws, tmp_path, mapping)
    assert proc.returncode == 0, proc.stderr
    assert read_env_file(str(out)) == {k: SECRET_VALUES[v] for k, v in mapping.items()}
    assert out.stat().st_mode & 0o777 == 0o600
    assert FakeAws.requests[0] == "PUT /latest/api/token"
    assert FakeAws.requests.count("POST /") == 2  # 12 names, at most 10 per call
    for value in SECRET_VALUES.values():
        assert value not in proc.stdout + proc.stderr


def test_fetch_secrets_fails_on_a_missing_parameter_without_writing(
        fake_aws: str, tmp_path: Path) -> None:
    FakeAws.parameters = {"/hello/prod/present": "v"}
    proc, out = secrets_run(fake_aws, tmp_path, {"PRESENT": "/hello/prod/present",
                                                 "ABSENT": "/hello/prod/absent"})
    assert proc.returncode != 0
    assert "ssm-get: missing SSM parameters: /hello/prod/absent" in proc.stderr
    assert not out.exists()


def test_ssm_get_reads_the_release_ref_with_get_parameter(fake_aws: str, tmp_path: Path) -> None:
    """EC2 servers of a git app read the ref to release from SSM (ssm:GetParameter)."""
    FakeAws.parameters = {"/webstack/dev/shop/release-ref": "v2.0.1"}
    FakeAws.requests = []
    cfg = make_cfg({"webstack:appName": "shop", "webstack:appRepo": REPO_URL})
    # an EC2 target, under a root
    target = Target(root=str(tmp_path / "root"), endpoints=Endpoints(imds=fake_aws, ssm=fake_aws))
    rendered = render(cfg, target)
    install(rendered, target)
    lib = Paths(target.root, "shop").lib
    release = rendered.files[f"{lib}/release"]
    assert '"$lib/ssm-get" --get "$REF_PARAMETER"' in release
    assert 'REF_PARAMETER="/webstack/dev/shop/release-ref"\n' in rendered.files[
        f"{lib}/settings.env"]

    def get(name: str) -> subprocess.CompletedProcess[str]:
        return run(["/usr/bin/python3", f"{lib}/ssm-get", "--get", name],
                   env={"PATH": os.environ["PATH"]})

    proc = get("/webstack/dev/shop/release-ref")
    assert (proc.returncode, proc.stdout) == (0, "v2.0.1\n"), proc.stderr
    assert FakeAws.requests[-1] == "POST /"
    missing = get("/webstack/dev/shop/nope")
    assert missing.returncode != 0 and missing.stdout == ""
    assert "ssm AmazonSSM.GetParameter answered 400" in missing.stderr
    assert "ParameterNotFound" in missing.stderr


# --- the Let's Encrypt certificate slot, against moto ------------------------------------------

def le_like_chain(tmp: Path) -> str:
    """Fullchain + key shaped like Let's Encrypt's default ECDSA chain (EE <- YE1 <- Root YE <-
    ISRG Root X2 <- ISRG Root X1): a P-256 leaf for two names, P-384 CAs, X2 cross-signed by
    the RSA-4096 X1, with the extensions such certificates carry (key ids, issuer and CRL URLs,
    policy; the leaf's two SCTs as 240 random bytes)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=120)

    common = ("subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
              "authorityInfoAccess=caIssuers;URI:http://x1.i.lencr.org/\n"
              "crlDistributionPoints=URI:http://x1.c.lencr.org/\ncertificatePolicies=2.23.140.1.2.1\n")
    ext = tmp / "ca.ext"
    ext.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                   + common)
    leaf_ext = tmp / "leaf.ext"
    leaf_ext.write_text("subjectAltName=DNS:app.example.com,DNS:www.example.com\n"
                        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                        "extendedKeyUsage=serverAuth\n" + common
                        + "1.3.6.1.4.1.11129.2.4.2=DER:0481F0" + os.urandom(240).hex() + "\n")
    openssl("req", "-x509", "-newkey", "rsa:4096", "-nodes", "-days", "30", "-subj",
            "/C=US/O=Internet Security Research Group/CN=ISRG Root X1",
            "-keyout", str(tmp / "x1.key"), "-out", str(tmp / "x1.pem"))
    issuer = "x1"
    for name, curve, subject in [
            ("x2", "P-384", "/C=US/O=Internet Security Research Group/CN=ISRG Root X2"),
            ("ye", "P-384", "/C=US/O=ISRG/CN=Root YE"), ("ye1", "P-384", "/C=US/O=ISRG/CN=YE1"),
            ("leaf", "P-256", "/CN=app.example.com")]:
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{curve}",
                "-nodes", "-subj", subject, "-keyout", str(tmp / f"{name}.key"),
                "-out", str(tmp / f"{name}.csr"))
        openssl("x509", "-req", "-in", str(tmp / f"{name}.csr"), "-CA", str(tmp / f"{issuer}.pem"),
                "-CAkey", str(tmp / f"{issuer}.key"), "-set_serial", "0x" + os.urandom(16).hex(),
                "-days", "30", "-extfile", str(leaf_ext if name == "leaf" else ext),
                "-out", str(tmp / f"{name}.pem"))
        issuer = name
    chain = [(tmp / f"{n}.pem").read_text() for n in ("leaf", "ye1", "ye", "x2")]
    return "".join(chain) + (tmp / "leaf.key").read_text()


def test_ssm_get_puts_and_gets_the_certificate_slot_on_moto(
        fake_aws: str, moto_url: str, tmp_path: Path) -> None:
    """The server's own client (IMDSv2 credentials from the fake, SSM from moto) stores the
    certificate as Pulumi's parameter expects and reads it back whole; the value never shows."""
    cfg = make_cfg({**ZONE, "webstack:tlsMode": "letsencrypt",
                    "webstack:domainExtraNames": json.dumps(["www.example.com"]),
                    "webstack:tlsEmail": "ops@example.com"}, stack="slot")
    # an EC2 target, under a root
    target = Target(root=str(tmp_path / "root"), endpoints=Endpoints(imds=fake_aws, ssm=moto_url))
    install(render(cfg, target), target)
    lib = Paths(target.root, "hello").lib
    slot = naming.tls_parameter(cfg)
    ssm = boto3.client("ssm", endpoint_url=moto_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    ssm.put_parameter(Name=slot, Type="SecureString", Value=TLS_PLACEHOLDER,  # as Pulumi does
                      Tier=naming.TLS_PARAMETER_TIER)
    blob = le_like_chain(tmp_path)
    # over the Standard tier's 4 KB even without the real extensions: why the slot is Advanced
    assert 4096 < len(blob.encode()) < 8192 and naming.TLS_PARAMETER_TIER == "Advanced"

    def ssm_get(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/usr/bin/python3", f"{lib}/ssm-get", *args], input=stdin,
                              capture_output=True, text=True, timeout=60, check=False,
                              env={"PATH": os.environ["PATH"]})

    put = ssm_get("--put", slot, stdin=blob)
    assert (put.returncode, put.stdout) == (0, ""), put.stderr
    assert "PRIVATE KEY" not in put.stderr
    stored = ssm.get_parameter(Name=slot, WithDecryption=True)["Parameter"]
    assert (stored["Value"], stored["Type"], stored["Version"]) == (blob, "SecureString", 2)
    (described,) = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [slot]}])["Parameters"]
    assert described["Tier"] == "Advanced"
    got = ssm_get("--get", slot)
    assert (got.returncode, got.stdout) == (0, blob + "\n"), got.stderr
    missing = ssm_get("--get", slot + "-nope")
    assert missing.returncode != 0 and "ParameterNotFound" in missing.stderr
