"""How long the program takes to evaluate under mocks: cold (imports included) and per server.

Each run is a fresh Python process, so imports and first-use costs count as they do for
`pulumi up`. The EC2 catalog comes from a moto server on 127.0.0.1 and is cached on disk before
timing starts, as it is for every `pulumi up` after the first. Prints medians of --runs runs,
and what a database and a cache add to the plan (a stack in its own VPC with and without them).

    python scripts/bench_program.py [--runs 5] [--counts 1,10,50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from devtools.mockrun import run_program, stack_config
t1 = time.perf_counter()
run = run_program("dev", stack_config("dev", {"webstack:serverCount": sys.argv[1],
                                             **json.loads(sys.argv[2])}))
t2 = time.perf_counter()
if run.error is not None:
    raise run.error
print(json.dumps({"imports": t1 - t0, "program": t2 - t1, "resources": len(run.resources)}))
"""


OWN_VPC = {"webstack:networkCreateVpc": "true"}
DATA_STORES = {**OWN_VPC, "webstack:database": "postgres", "webstack:cache": "valkey",
               "webstack:appMigrate": json.dumps(["python manage.py migrate --noinput"])}


def one_run(count: int, env: dict[str, str],
            overrides: dict[str, str] | None = None) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(count), json.dumps(overrides or {})],
                          cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"run failed (count={count}):\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--counts", default="1,10,50")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]

    from components import sizing
    from devtools.motoserver import moto_server

    with tempfile.TemporaryDirectory() as tmp, moto_server() as url:
        env = {**os.environ, "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true", "XDG_CACHE_HOME": tmp,
               "PYTHONPATH": str(ROOT)}
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "AWS_PROFILE"):
            env.pop(var, None)
        os.environ.update({k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                                "AWS_SECRET_ACCESS_KEY", "XDG_CACHE_HOME")})
        sizing.fetch_catalog("us-east-1", "x86_64")  # warm the on-disk cache

        medians: dict[int, dict[str, float]] = {}
        for count in counts:
            runs = [one_run(count, env) for _ in range(args.runs)]
            medians[count] = {k: statistics.median(r[k] for r in runs)
                              for k in ("wall", "imports", "program", "resources")}
            m = medians[count]
            print(f"count={count:>3}: wall {m['wall']:.2f}s (imports {m['imports']:.2f}s, "
                  f"program {m['program']:.3f}s), {int(m['resources'])} resources "
                  f"[median of {args.runs}]")
        stores = {}
        for label, overrides in (("own VPC", OWN_VPC), ("+ database and cache", DATA_STORES)):
            runs = [one_run(1, env, overrides) for _ in range(args.runs)]
            stores[label] = {k: statistics.median(r[k] for r in runs)
                             for k in ("program", "resources")}

    base = counts[0]
    print(f"\ndev stack, cold process, imports included: {medians[base]['wall']:.2f} s "
          f"(target <= 3 s)")
    for count in counts[1:]:
        extra = (medians[count]["program"] - medians[base]["program"]) / (count - base)
        print(f"marginal per extra server, {base}->{count}: {extra * 1000:.1f} ms "
              f"(target <= 50 ms)")
    plain, full = stores["own VPC"], stores["+ database and cache"]
    print(f"database (postgres) + cache (valkey) + appMigrate: plan {full['program']:.3f} s vs "
          f"{plain['program']:.3f} s, +{(full['program'] - plain['program']) * 1000:.0f} ms "
          f"for +{int(full['resources'] - plain['resources'])} resources "
          f"(ratio {full['program'] / plain['program']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
