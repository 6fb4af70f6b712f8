"""Let's Encrypt on a server, end to end on this machine: the setup script and `tls issue` (what
the retry timer runs) against a live loopback stack, with certbot, SSM (ssm-get) and the public
DNS replaced by stand-ins. The stand-in certbot signs with a test CA that openssl trusts here
(SSL_CERT_FILE) and runs the deploy hook as certbot does; the stand-in curl reaches this stack's
nginx for any name only while "DNS points here", so the HTTP-01 self-check is the real one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components import naming
from devtools.localrun import LocalRun, run_local
from tests.bootstrap.test_bootstrap_setup import STUBS
from tests.stubs import write_stubs
from tests.variants import cfg as variant

pytestmark = pytest.mark.realtools

CFG = variant("letsencrypt")
NAMES = ["app.example.com", "www.example.com"]
SLOT = naming.tls_parameter(CFG)
RATE_LIMITED = ("too many certificates (5) already issued for this exact set of identifiers in "
                "the last 168h0m0s")

TLS_STUBS = {
    # certbot certonly: fails like Let's Encrypt's rate limit when told to, else issues for the
    # --domain= names into a lineage and runs the deploy hook through a shell, as certbot does.
    "certbot": r"""
echo "certbot $*" >> "$STUB_LOG"
if [ -e "$STUB_STATE/certbot-fails" ]; then echo "$RATE_LIMITED" >&2; exit 1; fi
names=(); hook=""; cert_name=""
while [ $# -gt 0 ]; do
  case "$1" in
    --domain=*) names+=("${1#--domain=}") ;;
    --deploy-hook) hook=$2; shift ;;
    --cert-name) cert_name=$2; shift ;;
  esac
  shift
done
live="$STUB_STATE/live/$cert_name"
mkdir -p "$live"
"$TEST_ISSUE" "$live" 90 "${names[@]}"
RENEWED_LINEAGE=$live bash -c "$hook"
""",
    # Public DNS: every name resolves to this stack's nginx while "$STUB_STATE/dns-here" exists.
    "curl": r"""
echo "curl $*" >> "$STUB_LOG"
[ -e "$STUB_STATE/dns-here" ] || exit 6  # curl's "could not resolve host"
exec /usr/bin/curl --connect-to "::127.0.0.1:$HTTP_PORT" "$@"
""",
}

# SSM for the certificate slot: a file, and a log line per call (the value comes on stdin).
SSM_GET = r"""
echo "ssm-get $*" >> "$STUB_LOG"
case "$1" in
  --get) cat "$STUB_STATE/slot" ;;
  --put) cat > "$STUB_STATE/slot" ;;
  *) exit 2 ;;
esac
"""

# A leaf for the given names, signed by the test CA: fullchain (leaf + CA) and key in DIR.
ISSUE = r"""#!/bin/bash
set -euo pipefail
dir=$1 days=$2; shift 2
san=$(printf 'DNS:%s,' "$@")
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
  -keyout "$dir/privkey.pem" -out "$dir/req.csr" 2>/dev/null
openssl x509 -req -in "$dir/req.csr" -CA "$TEST_CA/ca.pem" -CAkey "$TEST_CA/ca.key" \
  -set_serial "0x$(openssl rand -hex 8)" -days "$days" -out "$dir/cert.pem" \
  -extfile <(printf 'subjectAltName=%s\n' "${san%,}") 2>/dev/null
cat "$dir/cert.pem" "$TEST_CA/ca.pem" > "$dir/fullchain.pem"
"""


@dataclass
class Server:
    run: LocalRun
    root: Path
    stubs: Path
    env: dict[str, str]

    @property
    def state(self) -> Path:
        return self.stubs / "state"

    @property
    def tls(self) -> Path:
        return Path(self.run.paths.etc) / "tls"

    def sh(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        (self.stubs / "log").write_text("")
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=self.env,
                              check=False)

    def setup(self) -> subprocess.CompletedProcess[str]:
        return self.sh([f"{self.run.paths.lib}/setup"])

    def calls(self) -> list[str]:
        return (self.stubs / "log").read_text().splitlines()

    def certificate(self, days: int, names: list[str]) -> str:
        """A CA-signed fullchain + key for these names, as the slot holds them."""
        out = Path(tempfile.mkdtemp(dir=self.root))
        subprocess.run([str(self.stubs / "issue"), str(out), str(days), *names], check=True,
                       timeout=30, env=self.env)
        return (out / "fullchain.pem").read_text() + (out / "privkey.pem").read_text()

    def served(self) -> str:
        return (self.tls / "fullchain.pem").read_text() + (self.tls / "privkey.pem").read_text()


def issuer_and_subject(pem: Path) -> tuple[str, str]:
    out = subprocess.run(["openssl", "x509", "-in", str(pem), "-noout", "-issuer", "-subject"],
                         capture_output=True, text=True, check=True, timeout=10).stdout
    issuer, subject = out.splitlines()
    return issuer.split("=", 1)[1], subject.split("=", 1)[1]


@pytest.fixture
def server() -> Iterator[Server]:
    for tool in ("nginx", "systemd-socket-activate", "openssl", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: scripts/setup-system.sh (make system) does it")
    root = Path(tempfile.mkdtemp(prefix="wstls-", dir="/tmp"))
    try:
        with run_local(CFG, root, venv=Path(sys.prefix)) as run:
            stubs = root / "stub"
            (stubs / "state").mkdir(parents=True)
            ca = root / "ca"
            ca.mkdir()
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                            "-subj", "/CN=webstack test CA", "-keyout", str(ca / "ca.key"),
                            "-out", str(ca / "ca.pem")], check=True, capture_output=True,
                           timeout=30)
            write_stubs(stubs, {**STUBS, **TLS_STUBS})
            (stubs / "issue").write_text(ISSUE)
            (stubs / "issue").chmod(0o755)
            write_stubs(Path(run.paths.lib), {"ssm-get": SSM_GET})  # what EC2 servers have
            (stubs / "state" / "slot").write_text("none\n")  # Pulumi's placeholder
            env = {"PATH": f"{stubs}:/usr/bin:/bin", "HOME": str(root), "UV_NO_INDEX": "1",
                   "STUB_LOG": str(stubs / "log"), "STUB_STATE": str(stubs / "state"),
                   "SSL_CERT_FILE": str(ca / "ca.pem"), "TEST_CA": str(ca),
                   "TEST_ISSUE": str(stubs / "issue"), "RATE_LIMITED": RATE_LIMITED,
                   "HTTP_PORT": str(run.target.http_port)}
            yield Server(run, root, stubs, env)
    finally:
        shutil.rmtree(root)


def test_a_stored_certificate_still_good_is_restored_without_certbot(server: Server) -> None:
    stored = server.certificate(60, NAMES)
    (server.state / "slot").write_text(stored)
    (server.state / "dns-here").touch()  # certbot could pass: it must still not be asked

    proc = server.setup()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = server.calls()
    assert f"ssm-get --get {SLOT}" in calls
    assert not [c for c in calls if c.startswith(("certbot", "curl")) or "--put" in c]
    assert server.served() == stored
    assert f"tls: restored the certificate stored in {SLOT}" in proc.stderr
    assert "systemctl enable --now --quiet certbot.timer webstack-hello-tls.timer" in calls

    # What the timer runs: a good, stored certificate needs neither certbot nor SSM.
    proc = server.sh([f"{server.run.paths.lib}/tls", "issue"])
    assert proc.returncode == 0, proc.stderr
    assert server.calls() == []


@pytest.mark.parametrize("stored", ["placeholder", "other names", "expired"])
def test_nothing_good_stored_asks_certbot_and_stores_what_it_issues(
        server: Server, stored: str) -> None:
    if stored == "other names":
        (server.state / "slot").write_text(server.certificate(60, ["other.example.com"]))
    elif stored == "expired":
        (server.state / "slot").write_text(server.certificate(0, NAMES))
    (server.state / "dns-here").touch()

    proc = server.setup()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = server.calls()
    assert f"tls: {SLOT} holds no certificate for {' '.join(NAMES)} valid for another hour" \
        in proc.stderr
    (certbot,) = [c for c in calls if c.startswith("certbot")]
    assert "--domain=app.example.com --domain=www.example.com" in certbot
    assert "--webroot" in certbot and "--deploy-hook" in certbot
    # the self-check fetched a token from this server's webroot for every name first
    checks = [c for c in calls if c.startswith("curl")]
    assert [c.split("http://", 1)[1].split("/", 1)[0] for c in checks] == NAMES
    lineage = server.state / "live" / "app.example.com"
    assert (server.tls / "fullchain.pem").resolve() == lineage / "fullchain.pem"
    issued = (lineage / "fullchain.pem").read_text() + (lineage / "privkey.pem").read_text()
    assert calls.index("systemctl reload nginx") < calls.index(
        f"ssm-get --put {SLOT}")
    assert (server.state / "slot").read_text() == issued  # the next server restores this one
    assert f"tls: stored the certificate in {SLOT}" in proc.stderr
    webroot = Path(server.run.paths.state) / "acme/.well-known/acme-challenge"
    assert webroot.is_dir() and not list(webroot.iterdir())  # the self-check's token is gone


def test_certbot_failing_keeps_the_placeholder_and_the_timer_retries(server: Server) -> None:
    (server.state / "dns-here").touch()
    (server.state / "certbot-fails").touch()

    proc = server.setup()
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the boot goes on
    assert RATE_LIMITED in proc.stderr
    assert "tls: certbot failed: nginx keeps its certificate" in proc.stderr
    assert "webstack-setup: no Let's Encrypt certificate yet: webstack-hello-tls.timer retries" \
        in proc.stdout
    calls = server.calls()
    assert "systemctl enable --now --quiet certbot.timer webstack-hello-tls.timer" in calls
    assert not [c for c in calls if "--put" in c]
    issuer, subject = issuer_and_subject(server.tls / "fullchain.pem")
    assert issuer == subject  # the self-signed placeholder nginx started with
    assert server.run.paths.lib + "/tls issue" in server.run.rendered.files[
        f"{server.run.paths.units}/webstack-hello-tls.service"]

    # A later timer run, once Let's Encrypt issues again: stored, and nginx reloaded.
    (server.state / "certbot-fails").unlink()
    proc = server.sh([f"{server.run.paths.lib}/tls", "issue"])
    assert proc.returncode == 0, proc.stderr
    assert "systemctl reload nginx" in server.calls()
    assert (server.state / "slot").read_text() == server.served()
    assert issuer_and_subject(server.tls / "fullchain.pem")[0] != subject


def test_no_certbot_until_every_name_reaches_this_server(server: Server) -> None:
    """A first deploy: the DNS record or the Elastic IP is not here yet. Asking certbot would
    only spend Let's Encrypt's failed-validation allowance."""
    proc = server.setup()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in NAMES:
        assert f"tls: http://{name}/ does not reach this server yet" in proc.stderr
    assert "tls: certbot not run: nginx keeps its certificate" in proc.stderr
    calls = server.calls()
    assert not [c for c in calls if c.startswith("certbot")]
    assert "systemctl enable --now --quiet certbot.timer webstack-hello-tls.timer" in calls

    proc = server.sh([f"{server.run.paths.lib}/tls", "issue"])  # the timer, still too early
    assert proc.returncode == 1 and not [c for c in server.calls() if c.startswith("certbot")]
