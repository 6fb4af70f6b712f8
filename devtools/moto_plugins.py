"""moto with per-instance EC2 console output, for tests of what servers print at boot.

moto's GetConsoleOutput answers every instance with the same kernel banner. Started as
`python -m devtools.moto_plugins [moto.server options]`, moto answers instead with the file
`$WEBSTACK_MOTO_CONSOLE_DIR/<instance-id>.txt` when it exists (read at each call, so a test can
rewrite it to make a boot progress), and with moto's own sample otherwise. Everything else is
plain moto.
"""

from __future__ import annotations

import os
from pathlib import Path

CONSOLE_DIR_ENV = "WEBSTACK_MOTO_CONSOLE_DIR"


def install() -> None:
    """Patch moto's EC2 GetConsoleOutput in this process."""
    from moto.core.responses import ActionResult
    from moto.core.types import Base64EncodedString
    from moto.core.utils import utcnow
    from moto.ec2.responses.general import General

    original = General.get_console_output

    def get_console_output(self: General) -> ActionResult:
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        console = Path(os.environ.get(CONSOLE_DIR_ENV, "/nonexistent")) / f"{instance.id}.txt"
        if not console.is_file():
            return original(self)
        text = console.read_text(encoding="utf-8")
        return ActionResult({"InstanceId": instance.id, "Timestamp": utcnow(),
                             "Output": Base64EncodedString.from_raw_string(text)})

    General.get_console_output = get_console_output  # type: ignore[method-assign]


if __name__ == "__main__":
    from moto.server import main

    install()
    main()
