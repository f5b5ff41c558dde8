"""Reading an archive back: every record of a vertical, opened, or the problem with it.

Segments are read oldest first (``engine.archive.segments``), line by line. What can be
wrong with a line, reported as a ``Problem`` that names the file and line, never a value:

- it fails authentication (``tampered``): altered bytes, a ciphertext moved between
  records or fields (``engine.archive.codec``);
- it is not a record, has an unknown format, or its key is not in the key directory;
- it copies an earlier record (same record id: a replayed line), or sits in another
  vertical's directory;
- it is the cut-short last line of a segment (``incomplete``): a crash mid-write. Such a
  line never held a whole record, so it is not a sign of tampering.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgspec

from engine.archive.codec import OpenedRecord, Opener
from engine.archive.errors import RecordError
from engine.archive.keys import ArchiveKeys
from engine.archive.segments import segment_files


class Problem(msgspec.Struct, frozen=True):
    """A line of a segment that yields no record.

    Attributes:
        path: The segment file.
        line: The line number (1-based).
        reason: What is wrong (never a value of the record).
        tampered: Authentication failed.
        incomplete: The segment's last line, cut short by a crash.
    """

    path: Path
    line: int
    reason: str
    tampered: bool = False
    incomplete: bool = False

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def read_vertical(
    directory: Path, vertical: str, keys: ArchiveKeys
) -> Iterator[OpenedRecord | Problem]:
    """Yield every record of ``vertical`` in the archive, opened, or its problem.

    Args:
        directory: The archive directory.
        vertical: The vertical whose segments to read.
        keys: The keys to decrypt with (every key id the records name).
    """
    opener = Opener(keys)
    seen: set[str] = set()
    for path in segment_files(directory / vertical):
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.endswith(b"\n"):
                    yield Problem(
                        path, number, "the last line is cut short (a crash mid-write)", False, True
                    )
                    break
                if not line.strip():
                    continue
                try:
                    record = opener.open(line)
                except RecordError as exc:
                    yield Problem(path, number, exc.reason, exc.tampered)
                    continue
                if record.vertical != vertical:
                    yield Problem(path, number, "a record of another vertical")
                elif record.rid in seen:
                    yield Problem(path, number, "a copy of an earlier record (same record id)")
                else:
                    seen.add(record.rid)
                    yield record


class _KeyOnly(msgspec.Struct):
    kid: str


def segments_by_key(directory: Path) -> Counter[str]:
    """Count the segments of every vertical by the key id of their first record.

    A key can be retired (its file deleted) once no segment still needs it.
    """
    counts: Counter[str] = Counter()
    if not directory.is_dir():
        return counts
    decoder = msgspec.json.Decoder(_KeyOnly)
    for vertical_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        for path in segment_files(vertical_dir):
            with path.open("rb") as handle:
                first = handle.readline()
            try:
                counts[decoder.decode(first).kid] += 1
            except msgspec.DecodeError:
                counts["(unreadable)"] += 1
    return counts
