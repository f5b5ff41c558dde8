"""``ml-service archive``: the lead archive's keys and its export for training.

- ``keygen``: create the first archive key (refuses when a current key exists).
- ``rotate-key``: create a new current key; old keys stay for decryption.
- ``keys``: list the keys, the current one, and how many segments each still seals.
- ``export``: decrypt a vertical's records into a training CSV (``engine.archive.export``).

The key directory is ``--keys``, else ``LEAD_ARCHIVE_KEYS``, else ``var/keys/archive``;
the archive is ``--dir``, else ``LEAD_ARCHIVE_DIR``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.archive.errors import ArchiveError, ArchiveKeyError
from engine.archive.keys import (
    CURRENT,
    DEFAULT_KEYS_DIR,
    KEYS_VARIABLE,
    ArchiveKeys,
    create_key,
    rotate,
)
from engine.archive.segments import DIR_VARIABLE


def add_archive_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``archive`` and its actions to the ``ml-service`` subcommands."""
    archive = sub.add_parser("archive", help="the opt-in encrypted lead archive: keys, export")
    actions = archive.add_subparsers(dest="archive_command", required=True, metavar="ACTION")
    keys_help = f"key directory (default ${KEYS_VARIABLE} or {DEFAULT_KEYS_DIR})"
    dir_help = f"archive directory (default ${DIR_VARIABLE})"

    keygen = actions.add_parser("keygen", help="create the first archive key")
    keygen.add_argument("--keys", help=keys_help)
    keygen.set_defaults(handler=keygen_command)
    rotate_key = actions.add_parser("rotate-key", help="make a new current key; keep old ones")
    rotate_key.add_argument("--keys", help=keys_help)
    rotate_key.set_defaults(handler=rotate_command)
    listing = actions.add_parser("keys", help="list keys and the segments each still seals")
    listing.add_argument("--keys", help=keys_help)
    listing.add_argument("--dir", help=dir_help)
    listing.set_defaults(handler=keys_command)

    export = actions.add_parser("export", help="decrypt a vertical's leads into a training CSV")
    export.add_argument("--vertical", required=True)
    export.add_argument("--out", required=True, help="the CSV to write (mode 0600: it holds PII)")
    export.add_argument(
        "--outcomes",
        help="CSV of lead_id and the vertical's target column, joined by lead_id",
    )
    export.add_argument(
        "--skip-invalid",
        action="store_true",
        help="leave out records that fail authentication, reporting each (default: fail)",
    )
    export.add_argument("--keys", help=keys_help)
    export.add_argument("--dir", help=dir_help)
    export.set_defaults(handler=export_command)


def _keys_dir(args: argparse.Namespace) -> tuple[Path, str]:
    if args.keys:
        return Path(args.keys), f"--keys {args.keys}"
    directory = Path(os.environ.get(KEYS_VARIABLE) or DEFAULT_KEYS_DIR)
    return directory, f"{KEYS_VARIABLE}={directory}"


def _archive_dir(args: argparse.Namespace) -> Path | None:
    value = args.dir or os.environ.get(DIR_VARIABLE)
    return Path(value) if value else None


def keygen_command(args: argparse.Namespace) -> int:
    """Create the first archive key."""
    directory, label = _keys_dir(args)
    if (directory / CURRENT).exists():
        raise ArchiveKeyError(
            f"{label}: a current key exists; 'ml-service archive rotate-key' makes a new one"
        )
    kid = create_key(directory)
    print(f"archive key {kid}: {directory / (kid + '.key')} (keep it secret; it is current)")
    return 0


def rotate_command(args: argparse.Namespace) -> int:
    """Create a new current key."""
    directory, label = _keys_dir(args)
    previous, kid = rotate(directory, label)
    print(
        f"archive key {kid} is current (was {previous or 'none'}); older keys stay for reading. "
        "Running services switch within a minute."
    )
    return 0


def keys_command(args: argparse.Namespace) -> int:
    """List the keys and the segments that still need each."""
    from engine.archive.reader import segments_by_key

    directory, label = _keys_dir(args)
    keys = ArchiveKeys.load(directory, require_current=False, label=label)
    current = keys.current
    archive = _archive_dir(args)
    usage = segments_by_key(archive) if archive is not None else None
    for kid in keys.ids():
        marker = "*" if kid == current else " "
        used = "" if usage is None else f"  {usage.pop(kid, 0)} segment(s)"
        print(f"{marker} {kid}{used}")
    for kid, count in sorted((usage or {}).items()):
        print(f"! {kid}  {count} segment(s) sealed under a key that is not in {label}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    """Decrypt a vertical's archive into a training CSV."""
    from engine.archive.export import export_csv
    from engine.settings import resolve_paths

    archive = _archive_dir(args)
    if archive is None:
        raise ArchiveError(f"no archive: pass --dir or set {DIR_VARIABLE}")
    if not archive.is_dir():
        raise ArchiveError(f"archive directory {archive} does not exist")
    directory, label = _keys_dir(args)
    keys = ArchiveKeys.load(directory, require_current=False, label=label)
    _, config = resolve_paths(config_path=args.config, model_path=args.model_path)
    out = Path(args.out)
    summary = export_csv(
        archive,
        args.vertical,
        config,
        keys,
        out,
        outcomes=Path(args.outcomes) if args.outcomes else None,
        skip_invalid=args.skip_invalid,
        warn=lambda line: print(line, file=sys.stderr),
    )
    notes = [f"{summary.records} records read"]
    for count, what in (
        (summary.skipped, "invalid skipped"),
        (summary.incomplete, "cut short by a crash"),
        (summary.without_outcome, "without an outcome"),
        (summary.superseded, "superseded by a later score of the same lead"),
    ):
        if count:
            notes.append(f"{count} {what}")
    print(f"wrote {summary.rows} {args.vertical} leads to {out} ({'; '.join(notes)})")
    if args.outcomes is None:
        print("the target column is empty: pass --outcomes to train on this file directly")
    return 0
