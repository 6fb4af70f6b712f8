#!/usr/bin/python3
"""The app's code bundle for the release script (runs as the app's user):

    fetch-bundle SHA256[@VERSION] DIR

gets that version of the stack's bundle object from S3 (the current one without @VERSION),
refuses it unless its sha256 is SHA256, and unpacks its plain files into DIR. Prints the sha256.
"""

from __future__ import annotations

import re
import sys
import tarfile

from awsclient import Aws, AwsError, settings, unpack

REF = re.compile(r"^([0-9a-f]{64})(?:@([A-Za-z0-9._\-]{1,1024}))?$")


def fetch(ref: str, dest: str) -> str:
    match = REF.match(ref)
    if not match:
        raise AwsError(f"{ref!r} is not a bundle's release: expected SHA256[@S3-VERSION-ID]")
    sha, version = match.groups()
    conf = settings()
    unpack(Aws(conf).s3_get(conf["BUNDLE_BUCKET"], conf["BUNDLE_KEY"], sha, version or ""),
           dest)
    return sha


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: fetch-bundle SHA256[@VERSION] DIR")
    try:
        print(fetch(sys.argv[1], sys.argv[2]))
    except (AwsError, OSError, KeyError, ValueError, tarfile.TarError) as err:
        sys.exit(f"fetch-bundle: FAILED: {err}")
