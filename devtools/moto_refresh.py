"""moto with Auto Scaling instance refreshes that a test scripts, plus devtools.moto_plugins.

moto 5.2 has no DescribeInstanceRefreshes (it answers HTTP 500). Started as
`python -m devtools.moto_refresh [moto.server options]`, moto answers it with the JSON list in
`$WEBSTACK_MOTO_REFRESH_DIR/<group name>.json` (read at each call, so a test can move a refresh
on), and with no refreshes otherwise — what AWS says of a group never refreshed. Times are
ISO 8601 strings in the file.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

REFRESH_DIR_ENV = "WEBSTACK_MOTO_REFRESH_DIR"


def install() -> None:
    """Add DescribeInstanceRefreshes to moto's Auto Scaling in this process."""
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult

    def describe_instance_refreshes(self: AutoScalingResponse) -> ActionResult:
        group = self._get_param("AutoScalingGroupName")
        path = Path(os.environ.get(REFRESH_DIR_ENV, "/nonexistent")) / f"{group}.json"
        refreshes = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
        for refresh in refreshes:
            for key in ("StartTime", "EndTime"):
                if key in refresh:
                    refresh[key] = datetime.fromisoformat(refresh[key])
        return ActionResult({"InstanceRefreshes": refreshes})

    AutoScalingResponse.describe_instance_refreshes = (  # type: ignore[attr-defined]
        describe_instance_refreshes)


if __name__ == "__main__":
    from moto.server import main

    from devtools import moto_plugins

    moto_plugins.install()
    install()
    main()
