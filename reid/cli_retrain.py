"""`reid retrain` and `reid models list|use|rollback|prepare`: a data dir's own model versions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reid.argtypes import add_ray_arguments, number, ray_address

minutes = number(float, low=0, low_open=True, high=24 * 60, what="a number of minutes")


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _held_out_note(settings) -> str:
    if settings.model_path is not None:
        return (f"; note: --model/REID_MODEL={settings.model_path} is set and wins over the data dir's model: "
                "unset it to answer with this version")
    return ""


def _embed_on(args: argparse.Namespace):
    """`--ray`: the catalogue is re-embedded on Ray workers (reid.reembed); None: in this process."""
    if ray_address(args) is None:
        return None
    from functools import partial

    from reid.cluster import import_ray
    from reid.reembed import reembed_on_ray

    import_ray()  # not installed: one line before any model loads
    return partial(reembed_on_ray, address=args.ray, workers=args.workers)


def cmd_retrain(args: argparse.Namespace) -> int:
    from reid.cli import _progress, _settings, log
    from reid.retrain import RetrainConfig, retrain
    from reid.retrain_gate import format_intervals, format_table

    embed = _embed_on(args)
    settings = _settings(args)
    cfg = RetrainConfig()
    if args.minutes is not None:
        cfg.minutes = args.minutes
    if args.epochs is not None:
        cfg.epochs = args.epochs
    try:
        result = retrain(settings, cfg, base_path=args.base, dry_run=args.dry_run, actor=args.actor,
                         progress=_progress(args), resume=not args.fresh, embed=embed)
    except KeyboardInterrupt:
        print("reid: interrupted; the prepared views and the training state are kept in "
              f"{Path(settings.data_dir) / 'models' / '.retrain'}: run `reid retrain` again to resume "
              "(--fresh to start over)", file=sys.stderr)
        raise
    rec = result.record
    if args.json:
        json.dump(rec, sys.stdout, indent=2)
        print()
    else:
        print(f"held-out individuals ({len(rec['data']['held_out_individuals'])}, never trained on), "
              f"scores {rec['calibration_in_gate']}:")
        print(format_table(rec["held_out_table"]))
        print(format_intervals(rec["gate"].get("intervals")))
        t = rec["training"]
        print(f"training: {t['steps']} steps of {t['planned_steps']} ({t['stopped_by']} ended it), "
              f"{rec['data']['train_photos']} photos of {rec['data']['train_individuals']} individuals, "
              f"{t['classes_synthetic'] // 2} synthetic individuals; {rec['seconds']} s in all, "
              f"peak memory {rec['peak_rss_mib']} MiB")
    gate = "; ".join(rec["gate"]["reasons"])
    if result.version is None:
        log.info("--dry-run: nothing written (gate %s: %s)", "passed" if rec["gate"]["passed"] else "failed", gate)
    elif result.promoted:
        log.info("model %s written and promoted (%s)%s", result.version, gate, _held_out_note(settings))
    else:
        log.info("model %s written, NOT promoted: %s. The model in force stays; `reid models use %s` "
                 "would force it", result.version, gate, result.version)
    if result.pipeline is not None:
        result.pipeline.close()
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from reid import model_versions as mv
    from reid.cli import _settings, _table, log

    settings = _settings(args)
    if args.action == "list":
        rows = []
        for info in mv.list_versions(settings.data_dir):
            s = info.summary()
            gate = "-" if s["gate"] is None else "passed" if s["gate"] else "failed"
            rows.append(["*" if s["current"] else "", s["version"], s["created"] or "-", s["parent"] or "-",
                         _num(s["fused_top1"]), _num(s["fused_auroc"]), gate])
        print(_table(rows, ["", "version", "created", "parent", "held-out fused top-1", "AUROC", "gate"]))
        since = mv.confirmations_since_model(settings.data_dir)
        print(f"{since['confirmations']} confirmations since the model in force was trained"
              + (f" ({since['since']})" if since["since"] else ""))
        if settings.model_path is not None:
            log.warning("--model/REID_MODEL=%s is set and wins over the data dir's model", settings.model_path)
        return 0
    embed = _embed_on(args)
    if args.action == "prepare":
        pipeline = mv.prepare(settings, mv.check_version_name(args.version), embed=embed)
        print(f"model {pipeline.model_id} prepared in {settings.data_dir} ({len(pipeline.gallery)} images indexed); "
              f"`reid models use {args.version}` makes it the model in force")
        pipeline.close()
        return 0
    if args.action == "use":
        pipeline = mv.use(settings, args.version, actor=args.actor, embed=embed)
    else:
        pipeline = mv.rollback(settings, actor=args.actor, embed=embed)
    model_id = pipeline.model_id
    pipeline.close()
    print(f"model in force in {settings.data_dir}: {model_id}{_held_out_note(settings)}")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "retrain", parents=[common], help="fine-tune the model on the catalogue's confirmed individuals",
        description="Fine-tune the model in use on the catalogue's confirmed photos (individual x flank; "
                    "individuals seen on two or more occasions), test it against the model in use on "
                    "held-out individuals, write it as a version in DATA_DIR/models/ and promote it when "
                    "its fused top-1 gain is beyond noise (paired bootstrap) and its new-individual AUROC "
                    "not lower beyond noise. Ctrl-C keeps a "
                    "resumable state. docs/retraining.md has the recipe and measurements.")
    p.add_argument("--base", type=Path, default=None, metavar="MODEL.pt",
                   help="start from this checkpoint (default: the model in use)")
    p.add_argument("--minutes", type=minutes, default=None, metavar="N",
                   help="time for training and the gate together (default 15; re-embedding excluded)")
    p.add_argument("--epochs", type=int, default=None, metavar="N", help="passes over the training views (default 40)")
    p.add_argument("--dry-run", action="store_true", help="train and measure, write and promote nothing")
    p.add_argument("--fresh", action="store_true", help="ignore a state left by an interrupted run")
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    p.add_argument("--actor", default="cli", help="who asked, for the audit log (default cli)")
    add_ray_arguments(p, "re-embed the catalogue")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("models", help="list, choose or roll back the data dir's model versions",
                       description="`list`: versions with their held-out numbers (* = in force); `use VERSION`: "
                                   "re-embed the catalogue with it, build its index, then make it the model in "
                                   "force (`shipped` = the installed default); `rollback`: back to the previous one; "
                                   "`prepare VERSION`: re-embed and index only, what is in force stays. "
                                   "--ray spreads the re-embedding over Ray workers (docs/scaling.md).")
    msub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    msub.add_parser("list", parents=[common], help="versions and which is in force")
    u = msub.add_parser("use", parents=[common], help="make VERSION the model in force")
    u.add_argument("version", metavar="VERSION")
    u.add_argument("--actor", default="cli", help="who asked, for the audit log")
    add_ray_arguments(u, "re-embed the catalogue")
    r = msub.add_parser("rollback", parents=[common], help="back to the model in force before this one")
    r.add_argument("--actor", default="cli", help="who asked, for the audit log")
    add_ray_arguments(r, "re-embed the catalogue")
    pr = msub.add_parser("prepare", parents=[common],
                         help="re-embed the catalogue with VERSION and build its index; nothing changes in force")
    pr.add_argument("version", metavar="VERSION")
    add_ray_arguments(pr, "re-embed the catalogue")
    p.set_defaults(func=cmd_models)
