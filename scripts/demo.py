"""`make demo`: the dev stack end to end on this machine, with no cloud account.

1. plan: the real program under Pulumi mocks, sizing against EC2's catalog as served by moto on
   127.0.0.1 — what `pulumi up` would create, the chosen type and the cost estimate;
2. render: the server's user-data and every file it installs, into build/<stack>/;
3. serve: those files installed under a temporary root and run for real — gunicorn from the
   service unit behind the rendered nginx site on 127.0.0.1 — then checked through nginx.

With a terminal it keeps serving until Ctrl-C (or --hold seconds); otherwise it checks and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import ssl
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components import bootstrap, config  # noqa: E402
from devtools import localrun  # noqa: E402
from devtools.mockrun import MockRun, run_program, stack_config  # noqa: E402
from devtools.motoserver import moto_server  # noqa: E402
from scripts.render import write  # noqa: E402

STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {text}", flush=True)


def plan(stack: str) -> MockRun:
    with tempfile.TemporaryDirectory() as cache, moto_server() as url:
        saved = dict(os.environ)
        os.environ.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "demo",
                           "AWS_SECRET_ACCESS_KEY": "demo", "AWS_EC2_METADATA_DISABLED": "true",
                           "XDG_CACHE_HOME": cache})
        try:
            return run_program(stack, stack_config(stack))
        finally:
            os.environ.clear()
            os.environ.update(saved)


def show_plan(run: MockRun) -> None:
    kinds = Counter(r.type.split(":")[-1] for r in run.resources if r.custom)
    components = [r for r in run.resources if not r.custom]
    say(f"plan: {sum(kinds.values())} resources in {len(components)} components")
    for comp in sorted(components, key=lambda r: r.type):
        children = Counter(r.type.split(":")[-1] for r in run.resources if r.parent == comp.urn)
        inner = ", ".join(f"{n} {k}" for k, n in sorted(children.items()))
        print(f"         {comp.type} {comp.name}: {inner or '(lookups only)'}")
    out = run.outputs
    print(f"         instance type: {out['sizingReason']}")
    cost = out["estimatedMonthlyCost"]
    print(f"         estimated cost: ${cost['total']}/month ({cost['period']}, estimate)")
    for item, usd in cost["breakdown"].items():
        print(f"           ${usd:>8.2f}  {item}")


def fetch(url: str, ca_file: str | None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=10, context=ssl.create_default_context(cafile=ca_file))
    else:
        conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", parts.path or "/")
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--out", type=Path, help="render directory (default build/<stack>)")
    parser.add_argument("--hold", type=float, default=None,
                        help="serve this many seconds (default: until Ctrl-C on a terminal)")
    args = parser.parse_args()

    say(f"1/3 plan: stack {args.stack}, the real program under Pulumi mocks")
    run = plan(args.stack)
    if run.error is not None:
        print(f"\n{run.error}", file=sys.stderr)
        return 1
    show_plan(run)

    cfg = config.parse_stack(args.stack)
    out_dir = args.out or ROOT / "build" / args.stack
    written = write(bootstrap.render(cfg), out_dir)
    say(f"2/3 render: user-data and {len(written) - 1} files in {out_dir}")

    say("3/3 serve: the rendered gunicorn + nginx on 127.0.0.1")
    root = Path(tempfile.mkdtemp(prefix="wsdemo-", dir="/tmp"))  # short: unix socket paths
    try:
        with localrun.run_local(cfg, root, venv=ROOT / ".venv") as served:
            ca = f"{served.paths.etc}/tls/fullchain.pem" if cfg.https else None
            status, _, body = fetch(served.base_url + "/", ca)
            health, _, _ = fetch(served.base_url + cfg.app.health_path, ca)
            ok = status == 200 and health == 200
            say(f"GET / -> {status} {body.decode(errors='replace').strip()!r}; "
                f"GET {cfg.app.health_path} -> {health}")
            if not ok:
                print("the app did not answer as expected: see "
                      f"{root}/gunicorn.log and {root}/nginx.log", file=sys.stderr)
                return 1
            print(json.dumps({"url": served.base_url + "/", "stack": args.stack,
                              "instanceType": run.outputs["instanceType"]}))
            hold = args.hold if args.hold is not None else (
                None if sys.stdin.isatty() else 0.0)
            if hold is None:
                say(f"serving at {served.base_url}/ — Ctrl-C to stop")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
            elif hold > 0:
                say(f"serving at {served.base_url}/ for {hold:.0f} s")
                time.sleep(hold)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
