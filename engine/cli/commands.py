"""Handlers of the ``ml-service`` subcommands; each returns an exit status."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from engine.config import ModelConfig
from engine.errors import EngineError, LeadError, StoreError, UnknownVertical
from engine.settings import EnginePaths, resolve_paths
from engine.store import layout, pointer
from engine.store.signing import Keyring, SigningKey, generate_keypair
from engine.store.verify import describe, verify_version

_PRETTY = msgspec.json.Encoder()


def _paths(args: argparse.Namespace) -> tuple[EnginePaths, ModelConfig]:
    return resolve_paths(config_path=args.config, model_path=args.model_path)


def _print_json(value: object) -> None:
    print(msgspec.json.format(_PRETTY.encode(value), indent=2).decode())


def synth(args: argparse.Namespace) -> int:
    """Write synthetic leads of a vertical to a CSV."""
    from engine.training.synth import write_csv

    out = Path(args.out)
    if out.parent != Path():
        out.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_csv(args.vertical, args.rows, args.seed, out)
    except ValueError as exc:
        raise EngineError(str(exc)) from exc
    print(f"wrote {args.rows} {args.vertical} leads to {out}")
    return 0


def train(args: argparse.Namespace) -> int:
    """Train, sign, publish and optionally activate a model version."""
    from engine.training.pipeline import train_vertical

    paths, config = _paths(args)
    signing_key = SigningKey.load(paths.signing_key)
    keyring = Keyring.load(paths.trusted_keys) if args.activate else None
    report = train_vertical(
        config,
        args.vertical,
        Path(args.data),
        args.version,
        paths.model_path,
        signing_key,
        activate_with=keyring,
        log=lambda line: print(line, file=sys.stderr),
    )
    metrics = report.manifest.metrics
    _print_json(
        {
            "vertical": args.vertical,
            "version": args.version,
            "path": str(report.path),
            "active": args.activate,
            "auc": round(metrics.auc, 4),
            "precision": round(metrics.precision, 4),
            "recall": round(metrics.recall, 4),
            "threshold": metrics.threshold,
            "brier": round(metrics.brier, 4),
            "trees": metrics.best_iteration,
        }
    )
    return 0


def keys_generate(args: argparse.Namespace) -> int:
    """Create the Ed25519 signing key pair."""
    directory = Path(args.dir)
    key_id = generate_keypair(directory)
    print(
        f"key {key_id}: private {directory / 'model-signing.key'} (keep it secret), "
        f"public {directory / 'trusted' / (key_id + '.pub')}"
    )
    return 0


def _keyring_or_none(paths: EnginePaths) -> Keyring | None:
    return Keyring.load(paths.trusted_keys) if paths.trusted_keys.exists() else None


def models_list(args: argparse.Namespace) -> int:
    """List versions per vertical with their metrics and verification state."""
    paths, config = _paths(args)
    keyring = _keyring_or_none(paths)
    verticals = (
        [args.vertical]
        if args.vertical
        else sorted(set(config.verticals) | set(layout.list_verticals(paths.model_path)))
    )
    listing = {v: describe(paths.model_path, v, keyring) for v in verticals}
    if args.json:
        _print_json(listing)
        return 0
    if keyring is None:
        print(f"(no trusted keys at {paths.trusted_keys}: signatures not checked)")
    for vertical, infos in listing.items():
        print(f"{vertical}:" + ("" if infos else " no versions"))
        for info in infos:
            state = {True: "verified", False: "REJECTED", None: "unchecked"}[info.verified]
            metrics = (
                f"auc={info.auc:.4f} precision={info.precision:.3f} recall={info.recall:.3f}"
                if info.auc is not None and info.precision is not None and info.recall is not None
                else "metrics unreadable"
            )
            marker = "*" if info.active else " "
            print(f"  {marker} v{info.version:<10} {state:<10} {metrics}  {info.created_at or ''}")
            if info.problem:
                print(f"      {info.problem}")
    return 0


def models_verify(args: argparse.Namespace) -> int:
    """Verify hashes and signatures; exit 1 if any version fails."""
    paths, _config = _paths(args)
    keyring = Keyring.load(paths.trusted_keys)
    if args.version and not args.vertical:
        raise StoreError("--version needs --vertical")
    verticals = [args.vertical] if args.vertical else layout.list_verticals(paths.model_path)
    failures = 0
    checked = 0
    for vertical in verticals:
        versions = (
            [args.version] if args.version else layout.list_versions(paths.model_path, vertical)
        )
        for version in versions:
            checked += 1
            try:
                verified = verify_version(
                    layout.version_dir(paths.model_path, vertical, version), keyring
                )
            except EngineError as exc:
                failures += 1
                print(f"FAIL {vertical} v{version}: {exc}")
            else:
                print(f"ok   {vertical} v{version} (signed by key {verified.key_id})")
    print(f"{checked} checked, {failures} failed")
    return 1 if failures or not checked else 0


def models_activate(args: argparse.Namespace) -> int:
    """Verify a version and make it active."""
    paths, _ = _paths(args)
    previous = pointer.activate(
        paths.model_path, args.vertical, args.version, Keyring.load(paths.trusted_keys)
    )
    print(f"{args.vertical}: active v{args.version} (was {_v(previous)})")
    return 0


def models_rollback(args: argparse.Namespace) -> int:
    """Re-activate the version that was active before the current one."""
    paths, _ = _paths(args)
    old, new = pointer.rollback(paths.model_path, args.vertical, Keyring.load(paths.trusted_keys))
    print(f"{args.vertical}: rolled back from v{old} to v{new}")
    return 0


def models_report(args: argparse.Namespace) -> int:
    """Verify a version and print the path of its model report (or open it)."""
    from engine.store.verify import verify_version

    paths, config = _paths(args)
    if args.vertical not in config.verticals:
        raise UnknownVertical(args.vertical, list(config.verticals))
    version = args.version or pointer.read_current(paths.model_path, args.vertical)
    if version is None:
        raise StoreError(f"{args.vertical} has no active version; name one with --version")
    path = layout.version_dir(paths.model_path, args.vertical, version)
    verified = verify_version(path, Keyring.load(paths.trusted_keys))  # the bytes are signed
    if layout.REPORT_FILE not in verified.files:
        raise StoreError(
            f"{args.vertical} v{version} has no report (trained before reports existed)"
        )
    report = path / layout.REPORT_FILE
    print(report)
    if args.open:
        import webbrowser

        webbrowser.open(report.resolve().as_uri())
    return 0


def _v(version: str | None) -> str:
    return "none" if version is None else f"v{version}"


def score(args: argparse.Namespace) -> int:
    """Score one lead (``--json``) and print the result, or a CSV file (``--input``).

    The file mode is ``engine.cli.bulk_score``. Usage mistakes (an option of the other
    mode, a missing ``--output`` or ``--vertical``) are reported like argparse's own.
    """
    if args.input is not None:
        return _score_file(args)
    for option, value in (("--output", args.output), ("--workers", args.workers)):
        if value is not None:
            _usage_error(args, f"{option} goes with --input, not --json")
    if args.vertical is None:
        _usage_error(args, "--vertical is required with --json")

    from engine.scoring.model import load_model
    from engine.scoring.scorer import Scorer

    paths, config = _paths(args)
    lead = _read_lead(args.lead_json)
    now = _parse_time(args.at) if args.at else None
    if args.vertical not in config.verticals:
        raise UnknownVertical(args.vertical, list(config.verticals))
    version = pointer.read_current(paths.model_path, args.vertical)
    if version is None:
        raise StoreError(
            f"{args.vertical} has no active version under {paths.model_path}; "
            "train one with --activate or run 'ml-service models activate'"
        )
    scorer = Scorer(config)
    scorer.install(
        load_model(
            layout.version_dir(paths.model_path, args.vertical, version),
            Keyring.load(paths.trusted_keys),
        )
    )
    try:
        result = scorer.score(args.vertical, lead, explain=args.explain, now=now)
    except LeadError as exc:
        print(f"error: {exc.field}: {exc.reason}", file=sys.stderr)
        return 1
    _print_json(result)
    return 0


def _score_file(args: argparse.Namespace) -> int:
    """Score every row of ``--input`` into ``--output`` (see ``engine.cli.bulk_score``)."""
    if args.output is None:
        _usage_error(args, "--output is required with --input (- writes stdout)")
    from engine.cli.bulk_score import BulkOptions, run_bulk

    paths, config = _paths(args)
    options = BulkOptions(
        input=args.input,
        output=args.output,
        vertical=args.vertical,
        workers=args.workers,
        explain=args.explain,
        now=_parse_time(args.at) if args.at else None,
    )
    run_bulk(options, paths, config)
    return 0


def _usage_error(args: argparse.Namespace, message: str) -> NoReturn:
    """Exit 2 with ``message`` under the subcommand's usage, as argparse does."""
    report: Callable[[str], NoReturn] | None = getattr(args, "usage_error", None)
    if report is not None:
        report(message)
    raise EngineError(message)  # a parser without the hook: still one clear line


def _read_lead(text: str) -> Any:
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise EngineError(f"cannot read {text[1:]}: {exc.strerror}") from exc
    try:
        lead = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise EngineError(f"--json is not valid JSON: {exc}") from exc
    if isinstance(lead, dict) and isinstance(lead.get("lead_data"), dict):
        lead = lead["lead_data"]  # accept the API's request body too
    if not isinstance(lead, dict):
        raise EngineError("--json must be a JSON object of the lead's fields")
    return lead


def _parse_time(text: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise EngineError(f"--at {text!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise EngineError(f"--at {text!r} needs a UTC offset, e.g. 2026-01-05T10:00:00+00:00")
    return moment.timestamp()
