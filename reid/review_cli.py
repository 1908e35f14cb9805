"""`reid review list|decide|undo|archive`: the review queue from the command line (scriptable).

    reid review list --status pending --json
    reid review decide 12 confirm --individual-id 7      # or --name "Tau Sheri" (exact name)
    reid review decide 12 13 14 new --name "Kyzyl-3"     # several items, one new individual
    reid review decide 12 not_identifiable | skip
    reid review undo 12
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _item_dict(item: Any) -> dict[str, Any]:
    from dataclasses import asdict

    out = asdict(item)
    out.pop("stored_path", None)
    return out


def _open(args: argparse.Namespace, *, model: bool) -> Any:
    """Deciding enrolls photos (the model is needed); listing only reads the catalogue."""
    from reid import cli

    if model:
        return cli._pipeline(args)
    from reid.catalog import Catalog

    return Catalog(cli._settings(args).data_dir)


def cmd_list(args: argparse.Namespace) -> int:
    from reid.cli import _table
    from reid.review import list_items

    catalog = _open(args, model=False)
    items, total = list_items(catalog, status=args.status, station=args.station, viewpoint=args.flank,
                              limit=args.limit, offset=args.offset)
    if args.json:
        json.dump({"total": total, "items": [_item_dict(i) for i in items]}, sys.stdout, indent=2, default=str)
        print()
        return 0
    rows = []
    for it in items:
        top = it.candidates[0] if it.candidates else None
        decided = f"{it.action}: {it.individual}" if it.action in ("confirm", "new") else (it.action or "")
        rows.append([str(it.id), it.status, it.verdict, it.file_name, it.viewpoint,
                     f"{top.identity} ({top.probability:.2f})" if top else "-", decided])
    if rows:
        print(_table(rows, ["id", "status", "verdict", "file", "flank", "machine's first", "decision"]))
    print(f"{total} item(s) with status {args.status}", file=sys.stderr)
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    from reid.errors import ReidError
    from reid.review import decide, decide_new

    if args.action == "confirm" and (args.individual_id is None) == (args.name is None):
        raise ReidError("confirm needs --individual-id ID or --name NAME (exactly one)")
    if args.action == "new" and not args.name:
        raise ReidError("new needs --name NAME")
    if len(args.items) > 1 and args.action != "new":
        raise ReidError("several items at once only for `new` (one new individual)")
    pipeline = _open(args, model=args.action in ("confirm", "new"))
    catalog = getattr(pipeline, "catalog", pipeline)
    if args.action == "new":
        items = decide_new(pipeline, args.items, args.name, actor=args.actor)
    elif args.action in ("confirm",):
        items = [decide(pipeline, args.items[0], "confirm", individual_id=args.individual_id, name=args.name,
                        viewpoint=args.viewpoint, actor=args.actor)]
    else:
        items = [_decide_without_model(catalog, args.items[0], args.action, args.actor)]
    for it in items:
        who = f" -> {it.individual} (id {it.individual_id})" if it.individual_id is not None else ""
        print(f"item {it.id}: {it.action or args.action}{who}; status {it.status}")
    return 0


def _decide_without_model(catalog: Any, item_id: int, action: str, actor: str) -> Any:
    """not_identifiable and skip enroll nothing: no model to load (a Pipeline-like shim)."""
    from types import SimpleNamespace

    from reid.review import decide

    return decide(SimpleNamespace(catalog=catalog), item_id, action, actor=actor)  # type: ignore[arg-type]


def cmd_undo(args: argparse.Namespace) -> int:
    from reid.review import undo

    pipeline = _open(args, model=True)
    it = undo(pipeline, args.item, actor=args.actor)
    print(f"item {it.id}: decision undone; status {it.status}")
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from reid import cli
    from reid.review import archive_decided, purge_expired

    settings = cli._settings(args)
    catalog = _open(args, model=False)
    archived = archive_decided(catalog, older_than_days=args.older_than, actor=args.actor)
    purged = purge_expired(catalog, settings.review_retention_days, actor=args.actor)
    print(f"archived {archived} decided item(s); removed {purged} archived item(s) past the retention of "
          f"{settings.review_retention_days} days (REID_REVIEW_RETENTION_DAYS)")
    return 0


def _item_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a review item id") from None


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("review", help="the review queue: list, decide, undo, archive",
                       description="Decide what the machine could not: confirm a candidate, name a new "
                                   "individual, mark a photo not identifiable, or skip it; undo a decision.")
    verbs = p.add_subparsers(dest="review_command", metavar="VERB", required=True)

    v = verbs.add_parser("list", parents=[common], help="list review items")
    v.add_argument("--status", choices=["pending", "auto", "decided", "archived", "all"], default="pending")
    v.add_argument("--station", default=None)
    v.add_argument("--flank", choices=["left", "right", "front", "back", "unknown"], default=None)
    v.add_argument("--limit", type=int, default=50)
    v.add_argument("--offset", type=int, default=0)
    v.add_argument("--json", action="store_true", help="print JSON instead of a table")
    v.set_defaults(func=cmd_list)

    v = verbs.add_parser("decide", parents=[common], help="decide one item (or several as one new individual)")
    v.add_argument("items", type=_item_id, nargs="+", metavar="ITEM")
    v.add_argument("action", choices=["confirm", "new", "not_identifiable", "skip"])
    v.add_argument("--individual-id", type=int, default=None, help="confirm: the individual's id")
    v.add_argument("--name", default=None, help="confirm: an exact existing name; new: the new name")
    v.add_argument("--viewpoint", choices=["left", "right", "front", "back", "unknown"], default=None,
                   help="confirm: the flank the photo shows (default: as identified)")
    v.add_argument("--actor", default="cli", help="who decides, for the record (default cli)")
    v.set_defaults(func=cmd_decide)

    v = verbs.add_parser("undo", parents=[common], help="undo an item's latest decision")
    v.add_argument("item", type=_item_id, metavar="ITEM")
    v.add_argument("--actor", default="cli")
    v.set_defaults(func=cmd_undo)

    v = verbs.add_parser("archive", parents=[common], help="archive decided items; drop those past the retention")
    v.add_argument("--older-than", type=float, default=0, metavar="DAYS",
                   help="archive items decided at least this many days ago (default 0: all decided)")
    v.add_argument("--actor", default="cli")
    v.set_defaults(func=cmd_archive)
