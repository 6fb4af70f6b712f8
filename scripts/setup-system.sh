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
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
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
echo "setup-system: done"
