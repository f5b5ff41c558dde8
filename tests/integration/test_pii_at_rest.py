"""PII never at rest: a real service with the lead archive on, hostile leads, then a search.

Leads carry distinctive PII strings everywhere a client can put them: in PII-marked
features, in unmarked features, in keys that are not features (e-mail, phone), in the
lead id, in leads that fail validation, in bodies that are not JSON, not UTF-8 or too
large, in an unknown field's name, single and batch. After a graceful stop, every byte
the service wrote is searched for every PII string in every form it could take (UTF-8,
case-folded, JSON-escaped) and for the random marker all of them share: nothing found.

The search proves it can fail: the archive's export decrypts the PII it sealed and the
same search finds it there, and a canary written into each searched place is found.

Where the service writes is a list of ``Source``s. The service uses no Redis yet; when
the scale-out work adds it, a source yielding a dump of every key and value (e.g.
``DUMP`` of each key from ``SCAN``, or the RDB file of a test Redis) joins
``service_sources`` and the same search covers it.
"""

from __future__ import annotations

import json
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from engine.archive.codec import OpenedRecord
from engine.archive.keys import ArchiveKeys
from engine.archive.reader import read_vertical
from engine.archive.segments import OPEN_SUFFIX, segment_files
from engine.cli.main import main as engine_cli
from tests.integration.service import ServiceProcess, metric_value

MARK = "pii" + secrets.token_hex(6)  # in every PII string; random, so never there by chance
MADE: set[str] = set()  # every PII string made, to search for each


def pii(label: str) -> str:
    """A distinctive PII string: non-ASCII (so JSON escapes it) and the run's marker."""
    text = f"Zoë Ünderhill {label} {MARK}-{label}"
    MADE.add(text)
    return text


class Source(Protocol):
    """Somewhere the service may have written: yields (where, bytes)."""

    def blobs(self) -> Iterator[tuple[str, bytes]]: ...


class FileTree:
    """Every regular file under a directory (or one file)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def blobs(self) -> Iterator[tuple[str, bytes]]:
        paths = [self.path] if self.path.is_file() else sorted(self.path.rglob("*"))
        for path in paths:
            if path.is_file() and not path.is_symlink():
                yield str(path), path.read_bytes()


def forms(text: str) -> set[bytes]:
    """Every encoding of ``text`` that a log line, a JSON file or a key could hold."""
    variants = {text, text.casefold(), text.lower()}
    found = set()
    for variant in variants:
        found.add(variant.encode())
        found.add(json.dumps(variant)[1:-1].encode())  # ASCII JSON: \u00eb
        found.add(json.dumps(variant, ensure_ascii=False)[1:-1].encode())
    return found


def search(sources: list[Source], strings: list[str]) -> list[str]:
    """Return 'where: what' for every PII string (or the marker) found in the sources."""
    needles = {form: s for s in strings for form in forms(s)}
    hits = []
    for source in sources:
        for where, data in source.blobs():
            folded = data.lower()
            if MARK.encode() in folded:
                hits.append(f"{where}: the marker {MARK}")
            hits.extend(f"{where}: {needles[n]!r}" for n in needles if n in data)
    return hits


def service_sources(server: ServiceProcess, archive: Path, tmp: Path) -> list[Source]:
    """Everything the service wrote: run dir (reload state, metrics files), log, archive,
    its temporary directory. A Redis dump source joins here with the scale-out work."""
    return [FileTree(server.run_dir), FileTree(server.log_path), FileTree(archive), FileTree(tmp)]


AUTO = {
    "age": 35,
    "driving_years": 15,
    "vehicle_age": 3,
    "annual_mileage": 12000,
    "vehicle_make": "Toyota",
    "vehicle_model": "Camry",
    "usage_type": "commute",
}


def valid_leads() -> list[tuple[str, dict, str | None]]:
    """(vertical, lead_data, lead_id) that score: PII in marked, unmarked and extra keys."""
    extra = {"email": pii("email") + "@example.com", "phone": pii("phone"), "name": pii("name")}
    return [
        (
            "auto",
            {
                **AUTO,
                "location": pii("auto-location"),
                "occupation": pii("auto-occupation"),
                "vehicle_model": pii("auto-unmarked-model"),  # an unseen category
                **extra,
            },
            pii("auto-lead-id"),
        ),
        (
            "home",
            {
                "square_footage": 1800,
                "address": pii("home-address"),
                "security_features": pii("home-security"),
                "roof_type": pii("home-unmarked-roof"),
                **extra,
            },
            "home-1",
        ),
        (
            "health",
            {
                "age": 44,
                "pre_existing_conditions": pii("health-conditions"),
                "current_insurer": pii("health-unmarked-insurer"),
                **extra,
            },
            None,
        ),
        ("life", {"age": 51, "location": pii("life-location"), **extra}, "life-1"),
    ]


def hostile_requests() -> list[tuple[dict, int]]:
    """(request kwargs, expected status): every way a PII string arrives in a failure."""
    auto = {**AUTO, "location": pii("bad-location")}
    score = "/api/v1/score"
    batch = "/api/v1/score/batch"
    json_type = {"Content-Type": "application/json"}
    return [
        (
            {"path": score, "body": {"vertical": "auto", "lead_data": {**auto, "age": pii("age")}}},
            422,
        ),
        ({"path": score, "body": {"vertical": "auto", "lead_data": {**auto, "age": 7}}}, 422),
        (
            {"path": score, "body": {"vertical": "auto", "lead_data": {"location": pii("no-age")}}},
            422,
        ),
        ({"path": score, "body": {"vertical": pii("vertical"), "lead_data": auto}}, 404),
        ({"path": score, "body": {"vertical": "auto", "lead_data": pii("lead-data")}}, 422),
        (
            {
                "path": score,
                "body": {"vertical": "auto", "lead_data": auto, "lead_id": pii("x") * 9},
            },
            422,
        ),
        ({"path": score, "body": {"vertical": "auto", "lead_data": auto, pii("field"): 1}}, 422),
        ({"path": score, "body": {"vertical": "auto", "lead_data": auto, "extra": pii("v")}}, 422),
        (
            {
                "path": score,
                "raw": b'{"vertical": "auto", "lead_data": {"location": "'
                + pii("truncated").encode(),
                "headers": json_type,
            },
            400,
        ),
        ({"path": score, "raw": pii("latin-1").encode("latin-1"), "headers": json_type}, 400),
        (
            {
                "path": score,
                "raw": json.dumps({"v": pii("text-plain")}).encode(),
                "headers": {"Content-Type": "text/plain"},
            },
            415,
        ),
        (
            {
                "path": score,
                "raw": json.dumps({"v": pii("too-big") * 600}).encode(),
                "headers": json_type,
            },
            413,
        ),
        ({"path": score, "body": {"vertical": "auto", "lead_data": auto}, "token": None}, 401),
        (
            {
                "path": batch,
                "raw": b'{"vertical": "auto", "leads": [' + pii("b-trunc").encode(),
                "headers": json_type,
            },
            400,
        ),
        (
            {
                "path": batch,
                "body": {"vertical": pii("b-vertical"), "leads": [{"lead_data": auto}]},
            },
            404,
        ),
        (
            {
                "path": batch,
                "body": {
                    "vertical": "auto",
                    "leads": [{"lead_data": auto, "lead_id": pii("bl")}] * 21,
                },
            },
            413,
        ),
    ]


def archive_written(server: ServiceProcess) -> float:
    try:
        return metric_value(server.metrics(), "ml_archive_records_total", outcome="written")
    except KeyError:
        return 0.0


@pytest.fixture(scope="module")
def archived(store, tmp_path_factory):
    """Run the service with the archive on, send everything, stop it gracefully."""
    base = tmp_path_factory.mktemp("pii")
    keys, archive, tmp = base / "archive-keys", base / "archive", base / "tmp"
    tmp.mkdir()
    assert engine_cli(["archive", "keygen", "--keys", str(keys)]) == 0
    env = store.env(
        LEAD_ARCHIVE_DIR=str(archive),
        LEAD_ARCHIVE_KEYS=str(keys),
        TMPDIR=str(tmp),
        MAX_BODY_BYTES="16384",
        MAX_BATCH="20",
    )
    server = ServiceProcess(env, base).start()
    try:
        client = server.client()
        leads = valid_leads()
        for vertical, lead, lead_id in leads:
            body = {"vertical": vertical, "lead_data": lead, "lead_id": lead_id, "explain": True}
            reply = client.request("POST", "/api/v1/score", token=store.scorer, body=body)
            assert reply.status == 200, reply
        auto_leads = [
            {
                "lead_data": {**AUTO, "occupation": pii("b-occupation"), "email": pii("b-email")},
                "lead_id": pii("b-lead-id"),
            },
            {"lead_data": {**AUTO, "vehicle_make": pii("b-unmarked-make")}},
            {"lead_data": {**AUTO, "age": pii("b-age"), "location": pii("b-invalid")}},
            {
                "lead_data": {**AUTO, "age": 300, "location": pii("b-range")},
                "lead_id": pii("b-bad"),
            },
        ]
        reply = client.request(
            "POST",
            "/api/v1/score/batch",
            token=store.scorer,
            body={"vertical": "auto", "leads": auto_leads, "explain": True},
        )
        assert reply.status == 200 and reply.json["scored"] == 2 and reply.json["failed"] == 2
        for kwargs, status in hostile_requests():
            token = kwargs.pop("token", store.scorer)
            path = kwargs.pop("path")
            reply = client.request("POST", path, token=token, **kwargs)
            assert reply.status == status, (path, reply)
        expected = len(leads) + 2
        deadline = time.monotonic() + 30
        while archive_written(server) < expected:  # every scored lead reached the disk
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        assert archive_written(server) == expected
        # Scored just before the stop: the graceful shutdown must write these too.
        last = [{"lead_data": {**AUTO, "location": pii(f"last-{i}")}} for i in range(3)]
        reply = client.request(
            "POST",
            "/api/v1/score/batch",
            token=store.scorer,
            body={"vertical": "auto", "leads": last},
        )
        assert reply.status == 200 and reply.json["scored"] == 3
        client.close()
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode == 0, server.log()
    opened = [
        item
        for vertical in ("auto", "home", "health", "life")
        for item in read_vertical(archive, vertical, ArchiveKeys.load(keys))
    ]
    assert len(opened) == expected + 3 and all(isinstance(i, OpenedRecord) for i in opened)
    return server, keys, archive, tmp, sorted(MADE)


def test_no_pii_in_anything_the_service_wrote(archived):
    server, _keys, archive, tmp, strings = archived
    sources = service_sources(server, archive, tmp)
    assert len(strings) >= 35
    assert search(sources, strings) == []
    # The searched places are not empty: the archive and metrics files are there.
    assert any(FileTree(server.run_dir / "metrics").blobs())
    assert server.log_path.stat().st_size > 0


def test_graceful_stop_closed_every_segment_privately(archived):
    _server, _keys, archive, _tmp, _strings = archived
    segments = [s for v in ("auto", "home", "health", "life") for s in segment_files(archive / v)]
    assert segments and not [s for s in segments if s.name.endswith(OPEN_SUFFIX)]
    for path in [*segments, *(s.parent for s in segments)]:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_export_decrypts_the_sealed_pii_the_search_then_finds(archived, tmp_path, store):
    """Positive control: the same search finds the PII the archive sealed, once decrypted."""
    _server, keys, archive, _tmp, _strings = archived
    out = tmp_path / "export"
    for vertical in ("auto", "home", "health", "life"):
        argv = ["archive", "export", "--vertical", vertical, "--out", str(out / f"{vertical}.csv")]
        assert engine_cli([*argv, "--dir", str(archive), "--keys", str(keys)]) == 0
    sealed = [
        pii(label)
        for label in (
            "auto-location",
            "auto-occupation",
            "auto-unmarked-model",
            "auto-lead-id",
            "home-address",
            "home-security",
            "home-unmarked-roof",
            "health-conditions",
            "health-unmarked-insurer",
            "life-location",
            "b-occupation",
            "b-lead-id",
            "b-unmarked-make",
        )
    ]
    never_stored = [pii(label) for label in ("email", "phone", "name", "b-email", "b-invalid")]
    hits = search([FileTree(out)], [*sealed, *never_stored])
    for text in sealed:
        assert any(repr(text) in hit for hit in hits), text
    for text in never_stored:  # not features (or not scored): dropped, not even sealed
        assert not any(repr(text) in hit for hit in hits), text
    assert len(ArchiveKeys.load(keys).ids()) == 1


def test_search_finds_a_canary_in_every_place(archived):
    """Positive control: each place the search covers is really read."""
    server, _keys, archive, tmp, _strings = archived
    canary = pii("canary")
    places = [server.run_dir / "metrics" / "canary.db", archive / "auto" / "canary", tmp / "c"]
    try:
        for path in places:
            path.write_text(json.dumps({"value": canary}))  # JSON-escaped, as a log holds it
        with server.log_path.open("a", encoding="utf-8") as log:
            log.write(canary.upper() + "\n")  # a changed case does not hide it either
        hits = search(service_sources(server, archive, tmp), [canary])
        for path in [*places, server.log_path]:
            assert any(hit.startswith(f"{path}: ") for hit in hits), path
    finally:
        for path in places:
            path.unlink(missing_ok=True)


def test_archive_without_a_key_stops_the_service_naming_the_variable(store, tmp_path):
    env = store.env(
        LEAD_ARCHIVE_DIR=str(tmp_path / "archive"), LEAD_ARCHIVE_KEYS=str(tmp_path / "none")
    )
    server = ServiceProcess(env, tmp_path, workers=1)
    with pytest.raises(RuntimeError, match="service exited early") as caught:
        server.start(timeout=30)
    assert "LEAD_ARCHIVE_KEYS" in str(caught.value) and "archive keygen" in str(caught.value)
    assert not (tmp_path / "archive").exists()
