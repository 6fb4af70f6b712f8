"""Renders a server's first boot: StackConfig → #cloud-config user-data (+ the files it installs).

Placeholder renderer until the cloud-init templates land; the API below is what WebServer,
scripts/render.py and the local VM use.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from dataclasses import dataclass, field

from components.config import StackConfig

EC2_USER_DATA_LIMIT = 16 * 1024  # bytes, before base64


class BootstrapError(Exception):
    """The rendered user-data cannot be used (e.g. too big even gzipped)."""


@dataclass(frozen=True)
class RenderedBootstrap:
    user_data: str
    files: dict[str, str] = field(default_factory=dict)  # path on the server -> content

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.user_data.encode()).hexdigest()

    @property
    def ec2_user_data_base64(self) -> str:
        """What EC2 receives: plain when it fits in 16 KiB, else gzip (cloud-init inflates it)."""
        raw = self.user_data.encode()
        if len(raw) > EC2_USER_DATA_LIMIT:
            raw = gzip.compress(raw, compresslevel=9, mtime=0)
            if len(raw) > EC2_USER_DATA_LIMIT:
                raise BootstrapError(
                    f"user-data is {len(raw)} bytes gzipped, over EC2's {EC2_USER_DATA_LIMIT}-byte "
                    "limit: shorten appEnv/appPreStart/extraCaCertFiles")
        return base64.b64encode(raw).decode()


def render(cfg: StackConfig) -> RenderedBootstrap:
    packages = ["python3-venv", "nginx", "git"]
    text = "#cloud-config\n" + "packages:\n" + "".join(f"  - {p}\n" for p in packages)
    return RenderedBootstrap(user_data=text)
