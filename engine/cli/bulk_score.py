"""Bulk scoring from a file: ``ml-service score --input leads.csv --output scored.csv``.

For backfills and re-pricing. Every lead goes through ``Scorer.score_batch``, the code
the service runs for ``/score`` batches (validation, encoding, LightGBM's batch predict,
confidence and price), with the active version of its vertical. Design, and why:

- Streaming. The input is read with the ``csv`` module in chunks of ``CHUNK_ROWS`` rows
  and each chunk's rows are written as soon as they are scored, in input order; at most
  a few chunks per worker are in flight, so memory does not grow with the file.
- Cells to JSON types exactly as the training CSV reader does
  (``engine.training.csvdata``): a numerical feature's cell is a number, and the missing
  markers (``""``, ``na``, ``nan``, ``null``, ``none``) mean missing; categorical and
  text cells stay strings, blank means missing. A numerical cell that is not a number
  is that row's error. Per-row problems (validation, a wrong number of fields, an
  unknown vertical in the ``vertical`` column) land in the ``error`` column as
  ``field: reason`` and never stop the run; problems of the run itself (unreadable
  file, no active model for ``--vertical``, a model that fails verification) stop it.
- One pricing moment and one model version per vertical for the whole run: ``--at`` or
  the start time, and the versions active at the start (a model activated meanwhile does
  not mix into the file), so a file prices consistently.
- Demand: a backfill's own lead rate is not the market's. The demand factor is
  ``clamp(1 + sensitivity * (rate / baseline - 1))``: a rate of 0 would mean "the
  market is dead" and apply the factor's floor (0.8 in the demo config) to every lead.
  ``NeutralDemand`` answers the baseline rate instead, which makes the factor exactly 1:
  no demand information, no demand adjustment. The column is still written (``1.0``).
- Workers. ``--workers N`` (default: the usable cores) scores chunks in N processes
  started with the *spawn* method, and each loads its models after it starts: LightGBM's
  OpenMP runtime does not survive a fork (LightGBM issues 4751 and 6137), and each
  process runs one LightGBM thread (``OMP_NUM_THREADS=1``, ``num_threads=1``) so N
  processes use N cores. The parent reads, hands out chunks and writes the results back
  in submission order. One worker, or a file of one chunk, is scored in process.
- Output. The input columns, then ``score, confidence, price, currency, accepted,
  model_version``, one ``factor_<name>`` column per market factor of the verticals in
  play, ``reasons`` (JSON, with ``--explain``) and ``error``: the same columns for every
  row. An input column with the name of an output column is not copied (the new value
  replaces it), so a scored file can be scored again. A file output is written to a
  temporary file beside it and renamed when complete: an output file is never partial,
  and ``--input f --output f`` re-prices in place.
"""

from __future__ import annotations

import csv
import io
import math
import multiprocessing
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import msgspec

from engine.config import ModelConfig
from engine.errors import EngineError, LeadError, StoreError, UnknownVertical
from engine.pricing.pricer import Pricer
from engine.scoring.model import load_model
from engine.scoring.result import LeadFailure, Reason, ScoreResult
from engine.scoring.scorer import Scorer
from engine.settings import EnginePaths
from engine.store import layout, pointer
from engine.store.signing import Keyring
from engine.training.csvdata import MISSING_MARKERS

CHUNK_ROWS = 1000
"""Rows per chunk: large enough for LightGBM's batch path, small enough to stream."""

VERTICAL_COLUMN = "vertical"
RESULT_COLUMNS = ("score", "confidence", "price", "currency", "accepted", "model_version")
FACTOR_PREFIX = "factor_"
REASONS_COLUMN = "reasons"
ERROR_COLUMN = "error"
PROGRESS_INTERVAL = 0.25
"""Seconds between progress redraws on a terminal."""

_IN_FLIGHT_PER_WORKER = 2  # one chunk scoring, one queued: workers never wait on the parent
_FIELD_PREFIX = "lead_data."  # the encoder names fields by the API's JSON path
_REASONS = msgspec.json.Encoder()


class NeutralDemand:
    """A ``DemandTracker`` that records nothing and answers each vertical's baseline rate.

    The demand factor is then exactly 1 (``rate / baseline == 1``): a file carries no
    market demand, and a rate of 0 would price every lead at the factor's floor.
    """

    def __init__(self, config: ModelConfig) -> None:
        """Take the baseline rate of every vertical that prices by demand."""
        self._baselines = {
            name: settings.pricing.demand.baseline_per_minute
            for name, settings in config.verticals.items()
            if settings.pricing.demand is not None
        }

    def record(self, vertical: str, now: float) -> float:
        """Count nothing; return the baseline rate of ``vertical``."""
        return self._baselines.get(vertical, 0.0)

    def rate(self, vertical: str, now: float) -> float:
        """Return the baseline rate of ``vertical``."""
        return self._baselines.get(vertical, 0.0)


@dataclass(frozen=True)
class BulkOptions:
    """What ``ml-service score --input`` was asked to do.

    Attributes:
        input: The CSV to score (``-``: stdin).
        output: Where to write the scored CSV (``-``: stdout).
        vertical: The vertical of every row; None reads the ``vertical`` column.
        workers: Processes to score in; None means every usable core.
        explain: Add the ``reasons`` column.
        now: Epoch seconds to price at; None means the start of the run.
    """

    input: str
    output: str
    vertical: str | None = None
    workers: int | None = None
    explain: bool = False
    now: float | None = None


@dataclass(frozen=True)
class BulkSummary:
    """The outcome of a run: rows read, rows scored, rows with an error, wall seconds."""

    rows: int
    scored: int
    errors: int
    seconds: float


@dataclass(frozen=True)
class _Plan:
    """Everything a worker needs to score chunks the same way as every other worker."""

    config: ModelConfig
    model_path: Path
    trusted_keys: Path
    header: tuple[str, ...]
    kept: tuple[int, ...]  # the input columns copied to the output
    vertical: str | None
    vertical_at: int  # the vertical column's position; -1 with a fixed vertical
    versions: dict[str, str]  # pinned at the start of the run
    unavailable: dict[str, str]  # configured verticals without a usable version: why
    factors: tuple[str, ...]
    explain: bool
    now: float
    delimiter: str


class _ScoredChunk(NamedTuple):
    text: str  # the chunk's output rows as CSV
    rows: int
    errors: int
    warnings: tuple[str, ...]


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _LeadReader:
    """Turns CSV rows into JSON-typed leads for one model version (see the module doc)."""

    def __init__(self, header: Sequence[str], numerical: set[str], others: set[str]) -> None:
        columns = {name.strip(): at for at, name in enumerate(header)}
        self.absent = sorted((numerical | others) - set(columns))
        self._numbers = [(name, at) for name, at in columns.items() if name in numerical]
        self._strings = [(name, at) for name, at in columns.items() if name in others]

    def lead(self, row: Sequence[str]) -> dict[str, Any]:
        """Return the lead of ``row``.

        Raises:
            LeadError: A numerical cell is not a number.
        """
        lead: dict[str, Any] = {}
        for name, at in self._strings:
            cell = row[at]
            if cell and not cell.isspace():
                lead[name] = cell
        for name, at in self._numbers:
            cell = row[at]
            try:
                # float() ignores surrounding white space, as the training reader's strip
                # does; "nan" parses to NaN, which the encoder treats as missing.
                lead[name] = float(cell)
            except ValueError:
                if cell.strip().casefold() not in MISSING_MARKERS:
                    raise LeadError(name, f"must be a number, not {cell!r}", "type") from None
        return lead


class ChunkScorer:
    """Scores chunks of CSV rows into CSV text; loads each vertical's model on first use.

    One per process: in the parent for one worker, else one per worker process.
    """

    def __init__(self, plan: _Plan) -> None:
        """Prepare a scorer with no model loaded yet."""
        self._plan = plan
        self._scorer = Scorer(
            plan.config, clock=lambda: plan.now, demand=NeutralDemand(plan.config)
        )
        self._readers: dict[str, _LeadReader] = {}
        self._keyring: Keyring | None = None
        self._warnings: list[str] = []
        self._blank = [""] * (len(RESULT_COLUMNS) + len(plan.factors) + int(plan.explain))

    def _reader(self, vertical: str) -> _LeadReader:
        """The lead reader of ``vertical``, loading its pinned model version the first time.

        Raises:
            LeadError: ``vertical`` is unknown or has no active model (a row's problem).
            EngineError: The pinned version does not load (the run's problem).
        """
        reader = self._readers.get(vertical)
        if reader is not None:
            return reader
        plan = self._plan
        version = plan.versions.get(vertical)
        if version is None:
            if vertical in plan.unavailable:
                raise LeadError(VERTICAL_COLUMN, plan.unavailable[vertical], "unknown")
            if not vertical:
                raise LeadError(VERTICAL_COLUMN, "is required", "missing")
            known = ", ".join(plan.config.verticals)
            raise LeadError(VERTICAL_COLUMN, f"unknown vertical {vertical!r} ({known})", "unknown")
        if self._keyring is None:
            self._keyring = Keyring.load(plan.trusted_keys)
        try:
            model = load_model(
                layout.version_dir(plan.model_path, vertical, version), self._keyring
            )
        except EngineError as exc:
            raise EngineError(f"{vertical} v{version}: {exc}") from None
        self._scorer.install(model)
        specs = model.encoder.specs
        others = {s.name for s in specs if s.kind != "numerical"}
        location = plan.config.verticals[vertical].pricing.location
        if location is not None:
            others.add(location.field)  # the pricer reads it, feature or not
        reader = _LeadReader(plan.header, {s.name for s in specs if s.kind == "numerical"}, others)
        if reader.absent:
            self._warnings.append(
                f"warning: no column for {', '.join(reader.absent)} ({vertical} "
                f"v{version}): scored as missing"
            )
        self._readers[vertical] = reader
        return reader

    def score_chunk(self, rows: Sequence[Sequence[str]]) -> _ScoredChunk:
        """Score ``rows`` (CSV records without the header) and format them as CSV."""
        plan = self._plan
        width = len(plan.header)
        results: list[list[str] | None] = [None] * len(rows)
        errors = 0
        groups: dict[str, tuple[list[int], list[dict[str, Any]]]] = {}
        for position, row in enumerate(rows):
            try:
                if len(row) != width:
                    raise LeadError("row", f"{len(row)} fields, the header has {width}")
                vertical = plan.vertical or row[plan.vertical_at].strip()
                lead = self._reader(vertical).lead(row)
            except LeadError as exc:
                results[position] = self._failed(exc.field, exc.reason)
                errors += 1
                continue
            positions, leads = groups.setdefault(vertical, ([], []))
            positions.append(position)
            leads.append(lead)
        for vertical, (positions, leads) in groups.items():
            scored = self._scorer.score_batch(vertical, leads, explain=plan.explain, now=plan.now)
            for position, result in zip(positions, scored, strict=True):
                if isinstance(result, LeadFailure):
                    results[position] = self._failed(result.field, result.reason)
                    errors += 1
                else:
                    results[position] = self._cells(result)
        text = io.StringIO()
        writer = _writer(text, plan.delimiter)
        kept = plan.kept
        for row, cells in zip(rows, results, strict=True):
            assert cells is not None  # every position was filled above
            copied = [row[at] if at < len(row) else "" for at in kept]
            writer.writerow(copied + cells)
        warnings, self._warnings = tuple(self._warnings), []
        return _ScoredChunk(text.getvalue(), len(rows), errors, warnings)

    def _failed(self, field: str, reason: str) -> list[str]:
        return [*self._blank, f"{field.removeprefix(_FIELD_PREFIX)}: {reason}"]

    def _cells(self, result: ScoreResult) -> list[str]:
        factors = result.market_factors
        cells = [
            repr(result.score),  # repr round-trips: the file holds the exact double
            repr(result.confidence),
            repr(result.price),
            result.currency,
            "true" if result.accepted else "false",
            result.model_version,
        ]
        cells.extend(repr(factors[name]) if name in factors else "" for name in self._plan.factors)
        if self._plan.explain:
            reasons: list[Reason] = result.reasons or []
            cells.append(_REASONS.encode(reasons).decode())
        cells.append("")
        return cells


def _writer(stream: TextIO, delimiter: str) -> Any:
    """A CSV writer in the repository's CSV style (LF line ends, minimal quoting)."""
    return csv.writer(stream, delimiter=delimiter, lineterminator="\n")


# One ChunkScorer per worker process, made by the pool's initializer.
_worker: ChunkScorer | None = None


def _start_worker(plan: _Plan) -> None:
    """Pool initializer: one LightGBM thread in this process, models loaded on first use."""
    global _worker  # noqa: PLW0603 (per-process state of a pool worker)
    os.environ["OMP_NUM_THREADS"] = "1"  # before lib_lightgbm (and its OpenMP) loads
    _worker = ChunkScorer(plan)


def _score_in_worker(rows: list[list[str]]) -> _ScoredChunk:
    """Pool task: score one chunk in this worker."""
    assert _worker is not None, "the pool initializer did not run"
    try:
        return _worker.score_chunk(rows)
    except EngineError as exc:
        # Subclasses with extra constructor arguments do not unpickle; the text is enough.
        raise EngineError(str(exc)) from None


def _score_in_pool(
    plan: _Plan, chunks: Iterable[list[list[str]]], workers: int
) -> Iterator[_ScoredChunk]:
    """Score ``chunks`` in ``workers`` spawned processes; yield the results in input order.

    At most ``_IN_FLIGHT_PER_WORKER`` chunks per worker are submitted ahead of the one
    being written: ``Pool.imap`` would read the whole file ahead into memory.
    """
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(plan,),
    )
    pending: deque[Future[_ScoredChunk]] = deque()
    try:
        for chunk in chunks:
            pending.append(pool.submit(_score_in_worker, chunk))
            if len(pending) >= workers * _IN_FLIGHT_PER_WORKER:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool as exc:
        raise EngineError(f"a scoring worker died: {exc}") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Progress:
    """A progress line on a terminal (rows done, rows/s), at most every PROGRESS_INTERVAL."""

    def __init__(self, stream: TextIO, started: float) -> None:
        self._stream = stream
        self._started = started
        self._live = _is_terminal(stream)
        self._drawn_at = -math.inf
        self._drawn = False

    def update(self, rows: int) -> None:
        if not self._live:
            return
        now = time.monotonic()
        if now - self._drawn_at < PROGRESS_INTERVAL:
            return
        self._drawn_at = now
        rate = rows / max(now - self._started, 1e-9)
        self._stream.write(f"\r{rows:,} rows, {rate:,.0f} rows/s\x1b[K")
        self._stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


@contextmanager
def _open_input(name: str) -> Iterator[TextIO]:
    if name == "-":
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        try:
            yield stdin
        finally:
            stdin.detach()  # leave sys.stdin open
        return
    try:
        stream = Path(name).open(encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        raise EngineError(f"cannot read {name}: {exc.strerror}") from None
    with stream:
        yield stream


@contextmanager
def _open_output(name: str) -> Iterator[TextIO]:
    """Stdout for ``-``; else a temporary file beside ``name``, renamed once complete."""
    if name == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(name)
    try:
        fd, temporary_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".partial", dir=path.parent
        )
    except OSError as exc:
        raise EngineError(f"cannot write {name}: {exc.strerror}") from None
    temporary = Path(temporary_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        mask = os.umask(0)
        os.umask(mask)
        temporary.chmod(0o666 & ~mask)  # what open() would have made, not mkstemp's 0600
        try:
            temporary.replace(path)
        except OSError as exc:
            raise EngineError(f"cannot write {name}: {exc.strerror}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def _io_errors(target: str) -> Iterator[None]:
    """Report an I/O failure while streaming (say, a full disk) as one line."""
    try:
        yield
    except OSError as exc:
        raise EngineError(f"{target}: {exc.strerror or exc}") from None


def _chunks(reader: Any, source: str, size: int) -> Iterator[list[list[str]]]:
    """Yield the records of ``reader`` in lists of ``size``; blank lines are skipped."""
    chunk: list[list[str]] = []
    try:
        for row in reader:
            if row:
                chunk.append(row)
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
    except csv.Error as exc:
        raise EngineError(f"{source} line {reader.line_num}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise EngineError(
            f"{source} is not UTF-8 text (line {reader.line_num + 1}): {exc.reason}"
        ) from None
    if chunk:
        yield chunk


def _factor_names(config: ModelConfig, verticals: Iterable[str]) -> tuple[str, ...]:
    """The market factors the verticals' pricers apply, in the pricer's order.

    Asked of ``Pricer`` itself (one price of a dummy lead), so the columns follow the
    pricing code rather than a copy of its rules.
    """
    names: dict[str, None] = {}
    for vertical in verticals:
        _, factors = Pricer(config.verticals[vertical].pricing).price(0.5, {}, 0.0, 1.0)
        names.update(dict.fromkeys(factors))
    return tuple(names)


def _pin_versions(
    model_path: Path, verticals: Iterable[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The active version of each vertical, and why the others have none."""
    versions: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    for vertical in verticals:
        try:
            version = pointer.read_current(model_path, vertical)
        except StoreError as exc:
            unavailable[vertical] = str(exc)
            continue
        if version is None:
            unavailable[vertical] = f"{vertical} has no active model"
        else:
            versions[vertical] = version
    return versions, unavailable


def _plan(
    options: BulkOptions,
    paths: EnginePaths,
    config: ModelConfig,
    header: list[str],
    source: str,
    delimiter: str,
    now: float,
) -> _Plan:
    names = [name.strip() for name in header]
    if options.vertical is not None:
        verticals = [options.vertical]
        vertical_at = -1
    elif VERTICAL_COLUMN in names:
        verticals = list(config.verticals)
        vertical_at = names.index(VERTICAL_COLUMN)
    else:
        raise EngineError(
            f"{source} has no {VERTICAL_COLUMN!r} column; name the vertical with --vertical"
        )
    versions, unavailable = _pin_versions(paths.model_path, verticals)
    factors = _factor_names(config, verticals)
    outputs = {*RESULT_COLUMNS, REASONS_COLUMN, ERROR_COLUMN}
    kept = tuple(
        at
        for at, name in enumerate(names)
        if name not in outputs and not name.startswith(FACTOR_PREFIX)
    )
    return _Plan(
        config=config,
        model_path=paths.model_path,
        trusted_keys=paths.trusted_keys,
        header=tuple(header),
        kept=kept,
        vertical=options.vertical,
        vertical_at=vertical_at,
        versions=versions,
        unavailable=unavailable,
        factors=factors,
        explain=options.explain,
        now=now,
        delimiter=delimiter,
    )


def _check_vertical(config: ModelConfig, model_path: Path, vertical: str) -> None:
    """Stop before reading anything when ``--vertical`` cannot be scored."""
    if vertical not in config.verticals:
        raise UnknownVertical(vertical, list(config.verticals))
    if pointer.read_current(model_path, vertical) is None:
        raise StoreError(
            f"{vertical} has no active version under {model_path}; "
            "train one with --activate or run 'ml-service models activate'"
        )


def run_bulk(
    options: BulkOptions,
    paths: EnginePaths,
    config: ModelConfig,
    *,
    err: TextIO | None = None,
) -> BulkSummary:
    """Score every row of ``options.input`` into ``options.output``.

    Prints a progress line on ``err`` when it is a terminal, and a summary line at the
    end. The delimiter is the vertical's training delimiter with ``--vertical`` (so a
    training file scores as is), else a comma; the output uses the input's.

    Args:
        options: What to score and how.
        paths: The model store and trusted keys.
        config: The model configuration.
        err: Where progress, warnings and the summary go (default ``sys.stderr``).

    Returns:
        The counts of the run.

    Raises:
        EngineError: The run could not be done (the message says why); a file output
            is then left untouched.
    """
    err = err if err is not None else sys.stderr
    started = time.monotonic()
    now = options.now if options.now is not None else time.time()
    delimiter = ","
    if options.vertical is not None:
        _check_vertical(config, paths.model_path, options.vertical)
        delimiter = config.verticals[options.vertical].training.delimiter
    source = "stdin" if options.input == "-" else options.input
    target = "stdout" if options.output == "-" else options.output
    rows = errors = 0
    with _open_input(options.input) as stream:
        reader = csv.reader(stream, delimiter=delimiter)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise EngineError(f"{source}: unreadable header: {exc}") from None
        if not header or not any(name.strip() for name in header):
            raise EngineError(f"{source} is empty: no header row")
        plan = _plan(options, paths, config, header, source, delimiter, now)
        chunks = _chunks(reader, source, CHUNK_ROWS)
        ahead = list(islice(chunks, 2))
        workers = options.workers or default_workers()
        scored: Iterator[_ScoredChunk]
        if workers == 1 or len(ahead) < 2:
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            in_process = ChunkScorer(plan)
            scored = map(in_process.score_chunk, chain(ahead, chunks))
        else:
            scored = _score_in_pool(plan, chain(ahead, chunks), workers)
        progress = _Progress(err, started)
        warned: set[str] = set()
        with _open_output(options.output) as out, _io_errors(target):
            _writer(out, delimiter).writerow(_output_header(plan))
            for chunk in scored:
                out.write(chunk.text)
                rows += chunk.rows
                errors += chunk.errors
                for warning in chunk.warnings:
                    if warning not in warned:
                        warned.add(warning)
                        progress.clear()
                        print(warning, file=err)
                progress.update(rows)
            progress.clear()
    seconds = time.monotonic() - started
    print(
        f"{target}: {rows:,} rows, {rows - errors:,} scored, {errors:,} errors "
        f"in {seconds:.2f} s ({rows / max(seconds, 1e-9):,.0f} rows/s)",
        file=err,
    )
    return BulkSummary(rows, rows - errors, errors, seconds)


def _output_header(plan: _Plan) -> list[str]:
    columns = [plan.header[at] for at in plan.kept]
    columns += RESULT_COLUMNS
    columns += [FACTOR_PREFIX + name for name in plan.factors]
    if plan.explain:
        columns.append(REASONS_COLUMN)
    columns.append(ERROR_COLUMN)
    return columns
