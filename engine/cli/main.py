"""``ml-service``: synthesise data, train, sign, verify, activate, roll back and score.

``archive`` manages the opt-in lead archive's keys and exports it (``engine.cli.archive``).
Every command reads ``CONFIG_PATH``, ``MODEL_PATH``, ``MODEL_SIGNING_KEY`` and
``MODEL_TRUSTED_KEYS`` (see ``engine.settings``); ``--config`` and ``--model-path``
override the first two. Exit status: 0 on success, 1 when the command failed (the
message on stderr says why), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.cli import commands
from engine.cli.archive import add_archive_commands
from engine.errors import EngineError
from engine.settings import DEFAULT_SIGNING_KEY

_SCORE_EPILOG = """\
file mode (--input leads.csv --output scored.csv):
  Streams the file in chunks of 1,000 rows over --workers processes, in order.
  Each row's vertical is --vertical, else its 'vertical' column. Cells are read
  as the training CSV reader reads them: numbers in numerical columns; empty, na,
  nan, null, none mean missing. The delimiter is the vertical's training one with
  --vertical, else a comma. Output: the input columns, then score, confidence,
  price, currency, accepted, model_version, one factor_<name> column per market
  factor, reasons (JSON, with --explain) and error ("field: reason" when the row
  was not scored; the other rows still are).
  Every row is priced at one time (--at, or the start of the run) by the versions
  active at the start. Demand is neutral (factor 1.0): a file's own lead rate is
  not market demand, and a rate of 0 would give every lead the demand floor.
  A progress line shows on a terminal; a summary line ends the run (stderr).
  Exit status 0 when the run completed, even with row errors.
"""


def _positive_int(text: str) -> int:
    """``--workers``: a whole number of at least 1 (else a usage error)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``ml-service``."""
    parser = argparse.ArgumentParser(
        prog="ml-service",
        description="Real-time lead scoring and dynamic pricing: models and scoring tools.",
    )
    parser.add_argument(
        "--config",
        help="model config YAML (default: $CONFIG_PATH or the repository's config/models.yaml)",
    )
    parser.add_argument(
        "--model-path",
        help="model store root (default: $MODEL_PATH or the config's model_base_path)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = sub.add_parser("synth", help="write realistic synthetic leads to a CSV")
    synth.add_argument("--vertical", required=True, help="auto, home, health or life")
    synth.add_argument("--rows", type=int, required=True, help="number of leads")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--out", required=True, help="output CSV path")
    synth.set_defaults(handler=commands.synth)

    train = sub.add_parser("train", help="train, sign and publish a model version")
    train.add_argument("--vertical", required=True)
    train.add_argument("--data", required=True, help="training CSV")
    train.add_argument("--version", required=True, help="new version, X.Y.Z")
    train.add_argument("--activate", action="store_true", help="make it the active version")
    train.set_defaults(handler=commands.train)

    keys = sub.add_parser("keys", help="manage the model signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = keys_sub.add_parser("generate", help="create an Ed25519 signing key pair")
    generate.add_argument(
        "--dir",
        default=str(DEFAULT_SIGNING_KEY.parent),
        help=f"key directory (default {DEFAULT_SIGNING_KEY.parent})",
    )
    generate.set_defaults(handler=commands.keys_generate)

    models = sub.add_parser("models", help="list, verify, activate and roll back versions")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = models_sub.add_parser("list", help="versions per vertical with their metrics")
    listing.add_argument("--vertical", help="only this vertical")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=commands.models_list)
    verify = models_sub.add_parser("verify", help="check hashes and signatures")
    verify.add_argument("--vertical", help="only this vertical")
    verify.add_argument("--version", help="only this version (with --vertical)")
    verify.set_defaults(handler=commands.models_verify)
    activate = models_sub.add_parser("activate", help="make a verified version active")
    activate.add_argument("--vertical", required=True)
    activate.add_argument("--version", required=True)
    activate.set_defaults(handler=commands.models_activate)
    rollback = models_sub.add_parser("rollback", help="re-activate the previous version")
    rollback.add_argument("--vertical", required=True)
    rollback.set_defaults(handler=commands.models_rollback)
    report = models_sub.add_parser(
        "report", help="print the path of a version's model report (report.html), verified"
    )
    report.add_argument("--vertical", required=True)
    report.add_argument("--version", help="default: the active version")
    report.add_argument("--open", action="store_true", help="open it in the default browser")
    report.set_defaults(handler=commands.models_report)

    score = sub.add_parser(
        "score",
        help="score one lead, or a CSV file of leads, with the active models",
        description=(
            "Score one lead (--json), or every row of a CSV file (--input: backfills and\n"
            "re-pricing), with the active model of its vertical: the service's own\n"
            "validation, confidence and pricing."
        ),
        epilog=_SCORE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lead_source = score.add_mutually_exclusive_group(required=True)
    lead_source.add_argument(
        "--json",
        dest="lead_json",
        metavar="JSON",
        help="one lead's fields as a JSON object; @FILE reads a file, - stdin",
    )
    lead_source.add_argument(
        "--input",
        metavar="CSV",
        help="score every row of this CSV file (- reads stdin); needs --output",
    )
    score.add_argument(
        "--output",
        metavar="CSV",
        help="with --input: where to write the scored rows (- writes stdout)",
    )
    score.add_argument(
        "--vertical",
        help="the lead's vertical (required with --json); with --input, the vertical of "
        "every row, else each row's 'vertical' column",
    )
    score.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="with --input: scoring processes (default: every core; 1 scores in process)",
    )
    score.add_argument("--explain", action="store_true", help="include reason codes")
    score.add_argument(
        "--at",
        metavar="TIME",
        help="price at this ISO 8601 time with a UTC offset instead of now",
    )
    score.set_defaults(handler=commands.score, usage_error=score.error)

    add_archive_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Run ``ml-service`` and return its exit status.

    Args:
        argv: The arguments (default ``sys.argv[1:]``).
        parser: A parser extending ``build_parser()`` (the service adds its commands).
    """
    args = (parser or build_parser()).parse_args(argv)
    try:
        status: int = args.handler(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
