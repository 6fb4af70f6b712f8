"""The local VM's base image: Debian 12 as a cloud image has it, built once without loop mounts.

debootstrap makes the root tree (kernel, systemd, cloud-init, openssh, ifupdown + DHCP: what a
cloud image carries, and none of the packages our user-data installs), `mkfs.ext4 -d` turns it
into a file system, qemu-img into qcow2. The kernel and initrd are kept beside the disk so qemu
boots them directly (no boot loader to install or emulate).

The image lives under `<cache>/images/<key>/`, where the key hashes the whole recipe (packages,
the customisation script, the mirror and the host's extra CAs): a changed recipe is a new image,
an unchanged one is never rebuilt. The host's extra CAs are baked in because HTTPS from the VM
passes the same intercepting proxy as the host's, and trusting them through cloud-init's
`ca_certs` would cost ~50 s of every boot under TCG.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
DISK_SIZE = "4G"

# What a Debian cloud image has that minbase lacks. python3-cffi-backend: without it cloud-init
# stays unconfigured. sudo: the default user's NOPASSWD rule needs it. dbus: hostnamectl.
# unattended-upgrades and logrotate: in Debian's cloud images (debian-cloud-images' CLOUD
# package list), so a first boot there finds them installed, as this one does.
PACKAGES = (
    "linux-image-cloud-amd64", "systemd-sysv", "udev", "dbus", "cloud-init",
    "python3-cffi-backend", "openssh-server", "ifupdown", "isc-dhcp-client", "iproute2",
    "netbase", "ca-certificates", "sudo", "unattended-upgrades", "logrotate",
)

# Runs as root with $1 = the root tree, $2 = the mirror, $3 = a directory of extra CA files.
CUSTOMISE = r"""
set -euo pipefail
r=$1 mirror=$2 cas=$3
cat > "$r/etc/cloud/cloud.cfg.d/90-webstack-vm.cfg" <<'EOF'
# The local VM: only the NoCloud seed (no probing of clouds), C.UTF-8 since the image has no
# locales package, and /etc/hosts names the host so sudo and nginx resolve it.
datasource_list: [NoCloud, None]
locale: C.UTF-8
manage_etc_hosts: true
EOF
echo 'LABEL=root / ext4 defaults 0 1' > "$r/etc/fstab"
rm -f "$r/etc/apt/sources.list"
cat > "$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# Current as a freshly published cloud image is: debootstrap took the release's versions only,
# and a first boot would otherwise spend minutes of emulated dpkg on security updates.
mount -t proc proc "$r/proc"
trap 'umount "$r/proc"' EXIT
export DEBIAN_FRONTEND=noninteractive
chroot "$r" apt-get update -qq
chroot "$r" apt-get dist-upgrade -y -qq -o Dpkg::Options::=--force-confold >/dev/null
chroot "$r" apt-get autoremove --purge -y -qq >/dev/null
chroot "$r" apt-get clean
find "$cas" -maxdepth 1 -name '*.crt' -exec cp -t "$r/usr/local/share/ca-certificates/" {} +
chroot "$r" update-ca-certificates >/dev/null
# Per-instance state a cloud image does not ship: host keys, machine id, downloaded packages.
rm -f "$r"/etc/ssh/ssh_host_*
: > "$r/etc/machine-id"
rm -f "$r/var/lib/dbus/machine-id"
""".replace("SECURITY_MIRROR", SECURITY_MIRROR)


def cache_dir() -> Path:
    """~/.cache/webstack, or $XDG_CACHE_HOME/webstack."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "webstack"


def host_mirror(sources: Path = Path("/etc/apt/sources.list.d/debian.sources")) -> str:
    """The host's Debian mirror (the first URIs of its deb822 sources), else deb.debian.org."""
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return DEFAULT_MIRROR


def host_cas() -> dict[str, str]:
    """The host's extra CAs by file name: the proxy the VM's HTTPS goes through trusts them."""
    if not HOST_CA_DIR.is_dir():
        return {}
    return {p.name: p.read_text() for p in sorted(HOST_CA_DIR.glob("*.crt"))}


@dataclass(frozen=True)
class Recipe:
    mirror: str
    cas: dict[str, str]

    @property
    def key(self) -> str:
        text = json.dumps({"suite": SUITE, "packages": PACKAGES, "customise": CUSTOMISE,
                           "mirror": self.mirror, "cas": self.cas, "size": DISK_SIZE},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Image:
    dir: Path

    @property
    def disk(self) -> Path:
        return self.dir / "disk.qcow2"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"


def _as_root(argv: list[str]) -> list[str]:
    return argv if os.geteuid() == 0 else ["sudo", "-n", *argv]


def _run(argv: list[str], timeout: float) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise RuntimeError(f"{' '.join(argv[:3])}... exited {proc.returncode}:\n{tail}")


def ensure_image(recipe: Recipe, say: Callable[[str], None]) -> Image:
    """The cached image for `recipe`, built first if missing (~2 min, needs root or sudo)."""
    images = cache_dir() / "images"
    image = Image(images / recipe.key)
    if image.disk.exists():
        say(f"image: cached {image.dir}")
        return image
    for tool in ("debootstrap", "mkfs.ext4", "qemu-img"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run scripts/setup-system.sh (make system)")
    work = images / f"{recipe.key}.build-{os.getpid()}"
    rootfs, cas = work / "rootfs", work / "cas"
    cas.mkdir(parents=True)
    for name, text in recipe.cas.items():
        (cas / name).write_text(text)
    try:
        say(f"image: debootstrap {SUITE} from {recipe.mirror} (~2 min, once per recipe)")
        _run(_as_root(["debootstrap", "--variant=minbase", "--components=main",
                       f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), recipe.mirror]),
             timeout=1800)
        _run(_as_root(["bash", "-c", CUSTOMISE, "customise", str(rootfs), recipe.mirror,
                       str(cas)]), timeout=300)
        say("image: file system and qcow2")
        # Debian links the newest kernel and initrd at the root of the tree.
        kernel, initrd = (rootfs / os.readlink(rootfs / name).lstrip("/")
                          for name in ("vmlinuz", "initrd.img"))
        raw = work / "disk.raw"
        _run(_as_root(["install", "-m", "0644", str(kernel), str(work / "vmlinuz")]), 60)
        _run(_as_root(["install", "-m", "0644", str(initrd), str(work / "initrd.img")]), 60)
        _run(_as_root(["mkfs.ext4", "-q", "-L", "root", "-d", str(rootfs), str(raw),
                       DISK_SIZE]), timeout=600)
        _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "disk.qcow2")], 600)
        final = Path(work / "final")
        final.mkdir()
        for name in ("disk.qcow2", "vmlinuz", "initrd.img"):
            (work / name).rename(final / name)
        final.rename(image.dir)
    finally:
        _run(_as_root(["rm", "-rf", str(work)]), timeout=300)
    say(f"image: built {image.dir}")
    for old in images.iterdir():  # images of older recipes: never booted again
        if old != image.dir and "." not in old.name:
            shutil.rmtree(old)
            say(f"image: removed the outdated {old.name}")
    return image
