"""What a server gets from a render, read back as the server reads it (the variants themselves
are tests/variants.py)."""

from __future__ import annotations

import base64
import gzip
import io
import re
import tarfile
from pathlib import PurePosixPath

import yaml

from components.bootstrap import RenderedBootstrap


def shell_scripts(files: dict[str, str]) -> dict[str, str]:
    """The rendered files that are shell scripts (by their #! line)."""
    return {p: t for p, t in files.items() if t.startswith(("#!/bin/bash", "#!/bin/sh"))}


def sourced_files(files: dict[str, str]) -> dict[str, str]:
    """The rendered files that the shell scripts source (`. "<dir>/<name>"`)."""
    names = {name for text in shell_scripts(files).values()
             for name in re.findall(r'^\. ".*/([^/"]+)"$', text, re.M)}
    return {p: t for p, t in files.items() if PurePosixPath(p).name in names}


def user_data_commands(user_data: str) -> list[str]:
    """The user-data's commands that cloud-init hands to /bin/sh (bootcmd and runcmd items given
    as strings; a list item is run without a shell)."""
    doc = yaml.safe_load(user_data)
    return [c for key in ("bootcmd", "runcmd") for c in doc.get(key, []) if isinstance(c, str)]


def shipped(rendered: RenderedBootstrap, root: str = "") -> dict[str, str]:
    """What a server gets, read the way it reads it: the user-data's write_files (as cloud-init
    decodes them) and the artefact's members (as the fetcher unpacks them under `root`)."""
    out = {}
    for f in yaml.safe_load(rendered.user_data).get("write_files", []):
        content = f["content"]
        if f.get("encoding") == "gz+b64":
            content = gzip.decompress(base64.b64decode(content)).decode()
        out[f["path"]] = content
    with tarfile.open(fileobj=io.BytesIO(rendered.artefact), mode="r:") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None and member.isfile()
            out[f"{root}/{member.name}"] = handle.read().decode()
    return out
