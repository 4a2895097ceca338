"""``python -m backdoorbook.data``: fetch the data, or make sure a data root holds it.

    python -m backdoorbook.data fetch [ITEM ...] [--root DIR]   download, rebuild, verify
    python -m backdoorbook.data ensure                          what `make book` runs first
    python -m backdoorbook.data checksums [ITEM ...] --root DIR  sha256 and content_sha256

See :mod:`backdoorbook.data.fetch`. Errors of the data layer, and file-system errors,
print one message and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import fetch as fetching
from .content import content_sha256
from .manifest import DATASET_NAMES, DataError, load_manifest
from .registry import sha256_file


def _checksums(items: list[str], root: Path) -> None:
    for name in items:
        manifest = load_manifest(name)
        if manifest.kind == "checkpoints":
            continue
        entry = manifest.archive()
        path = root / entry.path
        print(f"{entry.path}: sha256 {sha256_file(path)}")
        print(f"{entry.path}: content_sha256 {content_sha256(path, manifest.kind)}")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m backdoorbook.data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="download, rebuild and verify items into a root")
    fetch.add_argument("items", nargs="*", metavar="ITEM", help="items (default: all)")
    fetch.add_argument(
        "--root",
        type=Path,
        default=None,
        help=f"data root to fill (default: {fetching.DEFAULT_ROOT})",
    )
    commands.add_parser(
        "ensure",
        help="fetch what no root in $BACKDOORBOOK_DATA holds, "
        "into its first root (default: the fetch default)",
    )
    sums = commands.add_parser("checksums", help="print the archives' sha256 and content_sha256")
    sums.add_argument("items", nargs="*", metavar="ITEM", help="items (default: all)")
    sums.add_argument("--root", type=Path, required=True, help="data root holding the archives")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            fetching.fetch(args.items or None, args.root)
        elif args.command == "ensure":
            fetching.ensure()
        else:
            _checksums(args.items or list(DATASET_NAMES), args.root)
    except (DataError, OSError) as exc:  # OSError: an unwritable root, a full disk
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
