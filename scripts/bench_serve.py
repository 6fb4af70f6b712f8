"""Benchmark the rendered serving stack on loopback with wrk (run by hand, not by `make test`).

    python scripts/bench_serve.py [--duration 10] [--runs 3] [--json out.json]

Configurations, each measured as the median of --runs wrk runs:
  (a) the rendered nginx -> gunicorn stack (run_local: ExecStart on the socket unit, nginx site)
  (b) gunicorn direct on TCP with the same rendered worker settings
  (c) naive `gunicorn app:application` (one sync worker)
  (d) a 20 KB static file from nginx vs from the app, both behind the same nginx (the
      deployment alternative: the app serving its own static files); app direct (b) is shown too
Endpoints of the sample app: "/" (CPU-light), "/io" (waits 20 ms: a database call stand-in).
Targets: (a)/(b) >= 0.95 on both endpoints; /io (a)/(c) >= 10 and >= 90% of the ceiling
(request slots / 20 ms); static nginx/app >= 10.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.config import parse
from devtools.localrun import read_env_file, run_local, stop
from devtools.motoserver import free_port

CONNECTIONS = 50
IO_SECONDS = 0.020
STATIC_NAME = "bench-20k.txt"
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class Result:
    config: str
    endpoint: str
    rps: float  # median of the runs
    p99_ms: float  # median of the runs' p99
    runs_rps: list[float]


def wrk(url: str, duration: int) -> tuple[float, float]:
    """(requests/s, p99 in ms) of one wrk run with CONNECTIONS connections."""
    proc = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", url],
                          capture_output=True, text=True, timeout=duration + 60, check=True)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", proc.stdout, flags=re.MULTILINE)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", proc.stdout)
    if rps is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output:\n{proc.stdout}")
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed responses:\n{proc.stdout}")
    return float(rps.group(1)), float(p99.group(1)) * _UNIT_SECONDS[p99.group(2)] * 1000


def measure(config: str, endpoint: str, url: str, duration: int, runs: int) -> Result:
    wrk(url, 1)  # warm-up: workers started, connections and caches primed
    samples = [wrk(url, duration) for _ in range(runs)]
    result = Result(config, endpoint, statistics.median(s[0] for s in samples),
                    statistics.median(s[1] for s in samples), [s[0] for s in samples])
    print(f"  ({config}) {endpoint:<7} {result.rps:>10,.0f} req/s   p99 {result.p99_ms:8.1f} ms"
          f"   runs {', '.join(f'{r:,.0f}' for r in result.runs_rps)}", flush=True)
    return result


def _wait_http(port: int, timeout: float = 30) -> None:
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            conn.close()
    raise TimeoutError(f"gunicorn on port {port} did not answer within {timeout} s")


@contextmanager
def gunicorn(argv: list[str], cwd: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """A gunicorn on a free TCP port; yields its base URL."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([*argv, "--bind", f"127.0.0.1:{port}"], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_http(port)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc)


def slots(conf: str) -> int:
    """Concurrent request slots of the rendered settings on this machine (workers x threads)."""
    scope: dict[str, object] = {}
    exec(Path(conf).read_text(), scope)
    workers, threads = scope["workers"], scope.get("threads", 1)
    assert isinstance(workers, int) and isinstance(threads, int)
    return workers * threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the rendered stack with wrk.")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    for tool in ("wrk", "nginx", "systemd-socket-activate"):
        if shutil.which(tool) is None:
            print(f"bench_serve: {tool} missing: run scripts/setup-system.sh", file=sys.stderr)
            return 1

    cfg = parse({}, project="webstack", stack="bench", region="us-east-1",
                supported_regions=("us-east-1",))
    venv = Path(sys.prefix)
    root = Path(tempfile.mkdtemp(prefix="wsbench-", dir="/tmp"))
    results: list[Result] = []
    try:
        with run_local(cfg, root, venv) as run:
            app_dir = run.paths.src
            conf = f"{run.paths.etc}/gunicorn.conf.py"
            (Path(app_dir) / "static" / STATIC_NAME).write_bytes(b"x" * 20 * 1024)
            env = {**read_env_file(f"{run.paths.etc}/app.env"), "PATH": f"{venv}/bin:/usr/bin"}
            n_slots = slots(conf)
            gunicorn_bin = str(venv / "bin" / "gunicorn")
            print(f"bench_serve: {n_slots} request slots; wrk -c{CONNECTIONS}, "
                  f"{args.runs} x {args.duration} s", flush=True)
            for endpoint, path in (("light", "/"), ("io", "/io"),
                                   ("static", f"/static/{STATIC_NAME}"),
                                   ("static-app", f"/app-static/{STATIC_NAME}")):
                results.append(measure("a", endpoint, run.base_url + path, args.duration,
                                       args.runs))
            same = [gunicorn_bin, "--config", conf,
                    "--control-socket", str(root / "direct.ctl")]
            with gunicorn(same, app_dir, env, root / "direct.log") as url:
                for endpoint, path in (("light", "/"), ("io", "/io"),
                                       ("static-app", f"/app-static/{STATIC_NAME}")):
                    results.append(measure("b", endpoint, url + path, args.duration, args.runs))
        naive = [gunicorn_bin, "app:application", "--control-socket", str(root / "naive.ctl")]
        with gunicorn(naive, app_dir, env, root / "naive.log") as url:
            for endpoint, path in (("light", "/"), ("io", "/io")):
                results.append(measure("c", endpoint, url + path, args.duration, args.runs))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    by = {(r.config, r.endpoint): r.rps for r in results}
    ceiling = n_slots / IO_SECONDS
    checks = [
        ("proxy overhead light (a)/(b)", by["a", "light"] / by["b", "light"], 0.95),
        ("proxy overhead io (a)/(b)", by["a", "io"] / by["b", "io"], 0.95),
        ("io (a)/(c)", by["a", "io"] / by["c", "io"], 10.0),
        (f"io (a) / ceiling {ceiling:,.0f} req/s", by["a", "io"] / ceiling, 0.90),
        ("static (d) nginx / app behind nginx", by["a", "static"] / by["a", "static-app"], 10.0),
    ]
    info = [("static nginx / app direct (b)", by["a", "static"] / by["b", "static-app"])]
    print("\nratios:")
    for name, value, target in checks:
        print(f"  {name:<40} {value:8.2f}  (target >= {target:g})  "
              f"{'ok' if value >= target else 'MISSED'}")
    for name, value in info:
        print(f"  {name:<40} {value:8.2f}  (for information)")
    if args.json:
        args.json.write_text(json.dumps({
            "slots": n_slots, "connections": CONNECTIONS, "duration": args.duration,
            "runs": args.runs, "results": [asdict(r) for r in results],
            "ratios": {name: {"value": v, "target": t} for name, v, t in checks},
            "info": dict(info)}, indent=2))
    return 0 if all(v >= t for _, v, t in checks) else 2


if __name__ == "__main__":
    sys.exit(main())
