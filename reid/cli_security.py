"""`reid keys add|list|revoke`, `reid backup DEST`, `reid restore SRC`: who may use the
service, and a copy of everything to come back to."""

from __future__ import annotations

import argparse
from pathlib import Path

from reid.errors import NotFoundError


def _catalog(args: argparse.Namespace, *, create: bool = False):
    from reid.catalog import Catalog
    from reid.cli import _settings

    data_dir = Path(_settings(args).data_dir)
    if not create and not (data_dir / "catalog.sqlite").is_file():
        raise NotFoundError(f"no catalogue in {data_dir} (set --data-dir or REID_DATA_DIR)")
    return Catalog(data_dir)


def cmd_keys_add(args: argparse.Namespace) -> int:
    from reid import keys

    catalog = _catalog(args, create=True)
    key = keys.add_key(catalog, args.name, args.role, actor=args.actor)
    print(f"key {args.name!r} ({args.role}) for {catalog.data_dir}; it is shown only now - store it safely:")
    print(key)  # alone on the last line, for scripts: KEY=$(reid keys add NAME --role viewer | tail -n1)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from reid import keys

    rows = keys.list_keys(_catalog(args))
    if not rows:
        print("no keys: the service runs in laptop mode (this computer only, everyone admin)")
        return 0
    width = max(len(k.name) for k in rows)
    for k in rows:
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        print(f"{k.name:<{width}}  {k.role:<8}  created {k.created_at}  {state}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from reid import keys

    keys.revoke_key(_catalog(args), args.name, actor=args.actor)
    print(f"key {args.name!r} revoked; its browser sessions are ended")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from reid.backup import backup
    from reid.cli import _settings

    summary = backup(Path(_settings(args).data_dir), args.dest)
    print(f"backup of {summary.source} in {summary.dest}: catalogue, {summary.files} files "
          f"({summary.bytes / 2**20:.1f} MiB)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from reid.backup import restore
    from reid.cli import _settings

    summary = restore(args.source, Path(_settings(args).data_dir), force=args.force)
    print(f"restored {summary.source} into {summary.dest}: catalogue, {summary.files} files")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from reid.keys import ROLES

    p = sub.add_parser("keys", help="keys for the service: add, list, revoke",
                       description="Keys and roles for the HTTP service and its pages. Once a key exists, "
                                   "every route that holds data needs one. viewer: read and identify; reviewer: "
                                   "also decide review items (and see locations, by default); admin: everything.")
    verbs = p.add_subparsers(dest="keys_command", metavar="VERB", required=True)
    add = verbs.add_parser("add", parents=[common], help="make a key (printed once, on the last line)")
    add.add_argument("name", help="who holds it (recorded as the actor in the audit trail)")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--actor", default="cli", help="who made it, for the audit trail (default cli)")
    add.set_defaults(func=cmd_keys_add)
    lst = verbs.add_parser("list", parents=[common], help="names, roles and dates (never the keys)")
    lst.set_defaults(func=cmd_keys_list)
    rev = verbs.add_parser("revoke", parents=[common], help="revoke a key and end its browser sessions")
    rev.add_argument("name")
    rev.add_argument("--actor", default="cli", help="who revoked it, for the audit trail (default cli)")
    rev.set_defaults(func=cmd_keys_revoke)

    p = sub.add_parser("backup", parents=[common], help="copy the catalogue, images and models to a folder",
                       description="A consistent copy while the service runs: the catalogue through SQLite's "
                                   "online backup, then the stored images, calibration and search files. "
                                   "`reid restore DEST` brings it back.")
    p.add_argument("dest", type=Path, metavar="DEST", help="a new or empty folder")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", parents=[common], help="restore a `reid backup` folder as the data dir",
                       description="Copy a backup into the data dir (--data-dir / REID_DATA_DIR). Refuses a "
                                   "data dir that holds a catalogue unless --force (then it is moved aside first).")
    p.add_argument("source", type=Path, metavar="SRC")
    p.add_argument("--force", action="store_true", help="replace an existing catalogue (kept as <dir>.before-restore-*)")
    p.set_defaults(func=cmd_restore)
