"""Render a stack's first boot for review, offline: the user-data and every file it installs.

    python scripts/render.py --stack dev --out build/render-dev

Reads the stack's settings from Pulumi.<stack>.yaml (no Pulumi engine, no AWS) and writes
DIR/user-data plus DIR/files/<path on the server> for each installed file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.bootstrap import BootstrapError, RenderedBootstrap, render
from components.config import PROJECT_DIR, ConfigError, parse_stack


def write(rendered: RenderedBootstrap, out: Path) -> list[Path]:
    """DIR/user-data and DIR/files/...; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "user-data"]
    written[0].write_text(rendered.user_data, encoding="utf-8")
    for path, text in rendered.files.items():
        dest = out / "files" / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        dest.chmod(rendered.modes[path])
        written.append(dest)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render a stack's first boot for review.")
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--out", required=True, type=Path, help="directory to write into")
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR,
                        help="where Pulumi.<stack>.yaml is (default: this repository)")
    args = parser.parse_args(argv)
    try:
        rendered = render(parse_stack(args.stack, project_dir=args.project_dir))
        encoded = rendered.ec2_user_data_base64
    except (OSError, ConfigError, BootstrapError) as err:
        print(f"render: {err}", file=sys.stderr)
        return 1
    written = write(rendered, args.out)
    print(f"render: {args.stack}: user-data {len(rendered.user_data)} bytes "
          f"({len(encoded)} base64 for EC2), {len(written) - 1} files, sha256 {rendered.sha256}")
    print(f"render: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
