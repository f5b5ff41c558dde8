"""The record format: round trip, and every tampering an attacker with the files could try."""

import base64
import json
from typing import Any

import pytest

from engine.archive.codec import NONCE_BYTES, Opener, Sealer, iso_time
from engine.archive.errors import RecordError
from engine.archive.keys import ArchiveKeys, rotate

SCORED_AT = 1_764_000_000.25
SECRET = {"location": "12 Rue Zoë, Austin TX", "occupation": "nurse"}
CLEAR = {"age": 35, "annual_mileage": 12000.5, "vehicle_make": "Toyota"}


def seal(keys: ArchiveKeys, sealer: Sealer | None = None, **overrides) -> bytes:
    sealer = sealer or Sealer(keys.current_id, keys.key(keys.current_id))
    fields: dict[str, Any] = {
        "vertical": "auto",
        "model_version": "1.0.0",
        "scored_at": SCORED_AT,
        "score": 0.8125,
        "accepted": True,
        "clear": dict(CLEAR),
        "secret": dict(SECRET),
        "lead_id": "lead-42",
    }
    fields.update(overrides)
    return sealer.record(**fields)


def edit(line: bytes, change) -> bytes:
    record = json.loads(line)
    change(record)
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


def test_round_trip(keys):
    line = seal(keys)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    opened = Opener(keys).open(line)
    assert opened.values == {**CLEAR, **SECRET}
    assert opened.lead_id == "lead-42" and opened.kid == keys.current_id
    assert opened.vertical == "auto" and opened.model_version == "1.0.0"
    assert opened.score == 0.8125 and opened.accepted is True
    assert opened.scored_at == "2025-11-24T16:00:00.250000Z" == iso_time(SCORED_AT)


def test_sealed_values_and_lead_id_are_not_in_the_line(keys):
    line = seal(keys, lead_id="jane.doe@example.com")
    for text in (*SECRET.values(), "jane.doe@example.com", "Zo\\u00eb", "nurse"):
        assert text.encode() not in line
    record = json.loads(line)
    assert set(record["sealed"]) == set(SECRET) and record["clear"] == CLEAR
    raw = base64.b64decode(record["sealed"]["occupation"])
    assert len(raw) == NONCE_BYTES + len(b'"nurse"') + 16  # nonce, ciphertext, tag


def test_a_null_lead_id_is_sealed_too(keys):
    line = seal(keys, lead_id=None, secret={})
    record = json.loads(line)
    assert record["sealed"] == {} and record["lead_id"]  # every record authenticates
    assert Opener(keys).open(line).lead_id is None


def test_same_value_seals_differently_each_time(keys):
    sealer = Sealer(keys.current_id, keys.key(keys.current_id))
    one, two = json.loads(seal(keys, sealer)), json.loads(seal(keys, sealer))
    assert one["sealed"]["occupation"] != two["sealed"]["occupation"]  # fresh nonces
    assert one["rid"] != two["rid"] and one["seg"] == two["seg"]


def flip_ciphertext(record):
    raw = bytearray(base64.b64decode(record["sealed"]["location"]))
    raw[-20] ^= 1
    record["sealed"]["location"] = base64.b64encode(bytes(raw)).decode()


def swap_fields(record):
    sealed = record["sealed"]
    sealed["location"], sealed["occupation"] = sealed["occupation"], sealed["location"]


def move_to_lead_id(record):
    record["lead_id"] = record["sealed"]["occupation"]


def rename_field(record):
    record["sealed"]["address"] = record["sealed"].pop("location")


@pytest.mark.parametrize(
    "change",
    [
        flip_ciphertext,
        swap_fields,
        move_to_lead_id,
        rename_field,
        lambda r: r["sealed"].pop("occupation"),
        lambda r: r["clear"].update(age=36),
        lambda r: r["clear"].pop("vehicle_make"),
        lambda r: r.update(score=0.99),
        lambda r: r.update(accepted=False),
        lambda r: r.update(scored_at="2020-01-01T00:00:00.000000Z"),
        lambda r: r.update(model_version="9.9.9"),
        lambda r: r.update(vertical="home"),
        lambda r: r.update(rid="0" * 32),
        lambda r: r.update(seg="0" * 32),
    ],
)
def test_tampering_fails_authentication(keys, change):
    line = edit(seal(keys), change)
    with pytest.raises(RecordError, match="failed authentication") as caught:
        Opener(keys).open(line)
    assert caught.value.tampered
    for text in SECRET.values():
        assert text not in str(caught.value)


def test_ciphertext_moved_between_records_fails(keys):
    sealer = Sealer(keys.current_id, keys.key(keys.current_id))
    first, second = json.loads(seal(keys, sealer)), json.loads(seal(keys, sealer))
    second["sealed"]["location"] = first["sealed"]["location"]  # same key, same segment
    with pytest.raises(RecordError, match="failed authentication"):
        Opener(keys).open(json.dumps(second).encode())


def test_record_under_a_rotated_key_still_opens_and_kid_cannot_be_swapped(archive_key_dir):
    old_keys = ArchiveKeys.load(archive_key_dir)
    old_line = seal(old_keys)
    rotate(archive_key_dir)
    keys = ArchiveKeys.load(archive_key_dir)
    new_line = seal(keys)
    opener = Opener(keys)
    assert opener.open(old_line).kid == old_keys.current_id
    assert opener.open(new_line).kid == keys.current_id != old_keys.current_id
    relabelled = edit(old_line, lambda r: r.update(kid=keys.current_id))
    with pytest.raises(RecordError, match="failed authentication"):
        opener.open(relabelled)


def test_unknown_key_is_reported(keys, tmp_path):
    from engine.archive.keys import create_key

    create_key(tmp_path / "other")
    stranger = ArchiveKeys.load(tmp_path / "other")
    with pytest.raises(RecordError, match="not in LEAD_ARCHIVE_KEYS") as caught:
        Opener(keys).open(seal(stranger))
    assert not caught.value.tampered


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json\n", "not an archive record"),
        (b'{"v": 1}\n', "not an archive record"),
        (b"[]\n", "not an archive record"),
    ],
)
def test_lines_that_are_not_records(keys, line, message):
    with pytest.raises(RecordError, match=message):
        Opener(keys).open(line)


def test_unsupported_format_and_malformed_fields(keys):
    opener = Opener(keys)
    with pytest.raises(RecordError, match="format 2 is not supported"):
        opener.open(edit(seal(keys), lambda r: r.update(v=2)))
    with pytest.raises(RecordError, match="seg is not hex"):
        opener.open(edit(seal(keys), lambda r: r.update(seg="zz")))
    with pytest.raises(RecordError, match="not base64") as caught:
        opener.open(edit(seal(keys), lambda r: r["sealed"].update(location="***")))
    assert caught.value.tampered
    with pytest.raises(RecordError, match="too short"):
        opener.open(edit(seal(keys), lambda r: r["sealed"].update(location="AAAA")))


def test_iso_time_rounds_to_microseconds():
    assert iso_time(0.0) == "1970-01-01T00:00:00.000000Z"
    assert iso_time(1.9999999) == "1970-01-01T00:00:02.000000Z"
