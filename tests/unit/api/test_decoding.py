import json

import msgspec
import pytest

from api.decoding import check_unique_keys, decode_batch, decode_score
from api.errors import ApiError
from api.schemas import MAX_LEAD_FIELDS
from api.service import Service

LEAD = {"age": 35, "vehicle_make": "Toyota", "location": "Austin, TX 78701"}


def refused(decode, raw):
    with pytest.raises(ApiError) as info:
        decode(raw)
    error = info.value
    return error.status, error.type, error.field, error.message


def test_ordinary_bodies_decode():
    body = decode_score(json.dumps({"vertical": "auto", "lead_data": LEAD}).encode())
    assert body.vertical == "auto" and body.lead_data == LEAD
    pretty = json.dumps({"vertical": "auto", "lead_data": LEAD, "lead_id": "L"}, indent=2)
    assert decode_score(pretty.encode()).lead_id == "L"
    batch = decode_batch(json.dumps({"vertical": "a", "leads": [{"lead_data": LEAD}] * 3}).encode())
    assert len(batch.leads) == 3


@pytest.mark.parametrize(
    "raw",
    [
        # colons in values, explicit defaults and nested objects take the exact check
        {"vertical": "auto", "lead_data": {**LEAD, "note": "at 12:30"}},
        {"vertical": "auto", "lead_data": LEAD, "explain": False, "lead_id": None},
        {"vertical": "auto", "lead_data": {**LEAD, "extra": {"a": {"b": [1, {"c": 2}]}}}},
        {"vertical": "auto", "lead_data": {**LEAD, "quote": 'say \\":\\" twice'}},
    ],
)
def test_no_false_duplicates(raw):
    assert decode_score(json.dumps(raw).encode()).vertical == "auto"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"vertical":"a","vertical":"b","lead_data":{}}', "vertical"),
        (b'{"vertical":"a","lead_data":{"age":1},"lead_data":{"age":2}}', "lead_data"),
        (b'{"vertical":"a","lead_data":{"age":1, "age" :2}}', "lead_data.age"),
        (b'{"vertical":"a","lead_data":{"x":[{"k":1},{"k":1,"k":2}]}}', "lead_data.x[1].k"),
        (b'{"vertical":"a","lead_data":{},"explain":true,"explain":false}', "explain"),
    ],
)
def test_duplicate_keys_are_refused_with_their_path(raw, field):
    status, kind, got, message = refused(decode_score, raw)
    assert (status, kind, got) == (400, "duplicate_key", field)
    assert repr(field.rsplit(".", 1)[-1].split("[")[0]) in message


def test_duplicate_keys_in_a_batch():
    raw = (
        b'{"vertical":"a","leads":[{"lead_data":{}},'
        b'{"lead_data":{"a":1},"lead_id":"x","lead_id":"y"}]}'
    )
    assert refused(decode_batch, raw)[:3] == (400, "duplicate_key", "leads[1].lead_id")


def test_duplicate_key_names_are_echoed_bounded():
    key = "k\x00" * 500
    raw = b'{"vertical":"a","lead_data":{%s:1,%s:2}}' % ((json.dumps(key).encode(),) * 2)
    _, kind, field, message = refused(decode_score, raw)
    assert kind == "duplicate_key" and len(field) < 400 and "\x00" not in field + message


def test_check_unique_keys_fails_closed():
    with pytest.raises(ApiError) as info:
        check_unique_keys(b"[" * 100_000 + b"]" * 100_000)
    assert (info.value.status, info.value.type) == (400, "invalid_json")
    with pytest.raises(ApiError) as info:
        check_unique_keys(b"{nope")
    assert info.value.type == "invalid_json"
    check_unique_keys(b'{"a": {"a": 1}}')  # the same key in two objects is fine
    with pytest.raises(ApiError) as info:  # a repeat before a part nested too deeply
        check_unique_keys(b'[{"a":1,"a":2},' + b"[" * 100_000 + b"]" * 100_000 + b"]")
    assert (info.value.status, info.value.type) == (400, "invalid_json")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'{"vertical":"a\xffb","lead_data":{}}', "UTF-8"),
        (b'{"vertical":"\xed\xa0\x80","lead_data":{}}', "UTF-8"),
        (b'{"vertical":"a","lead_data":{},"lead_id":"\\ud800"}', "surrogate"),
        (b'{"vertical":"a","lead_data":{},"lead_id":"\\udc00x"}', "surrogate"),
        (b'{"vertical":"a","lead_data":{"x":' + b"[" * 5000 + b"]" * 5000 + b"}}", "deeply"),
        (b'{"vertical":"a","lead_data":{"x":NaN}}', "malformed"),
    ],
)
def test_not_json_is_400(raw, fragment):
    status, kind, field, message = refused(decode_score, raw)
    assert (status, kind, field) == (400, "invalid_json", None)
    assert fragment in message


@pytest.mark.parametrize(
    ("raw", "decode", "field"),
    [
        (b'{"vertical":"a","lead_data":{"ok":1,"age":1e400}}', decode_score, "lead_data.age"),
        (b'{"vertical":"a","lead_data":{"n":' + b"9" * 5000 + b"}}", decode_score, "lead_data.n"),
        (
            b'{"vertical":"a","leads":[{"lead_data":{}},{"lead_data":{"b":-1e999}}]}',
            decode_batch,
            "leads[1].lead_data.b",
        ),
        (b'{"vertical":"a","lead_data":{"x":[1,2,1e999]}}', decode_score, "lead_data.x[2]"),
    ],
)
def test_numbers_out_of_range_name_their_key(raw, decode, field):
    status, kind, got, _ = refused(decode, raw)
    assert (status, kind, got) == (422, "validation_error", field)


def test_too_many_lead_fields():
    lead = {f"f{i}": i for i in range(MAX_LEAD_FIELDS + 1)}
    status, kind, field, message = refused(
        decode_score, json.dumps({"vertical": "a", "lead_data": lead}).encode()
    )
    assert (status, kind, field) == (422, "validation_error", "lead_data")
    assert str(MAX_LEAD_FIELDS) in message
    lead.pop("f0")
    assert len(decode_score(json.dumps({"vertical": "a", "lead_data": lead}).encode()).lead_data)


@pytest.mark.parametrize("lead_id", ["L\x00", "a\nb", "tab\there", "\u2028"])
def test_lead_ids_must_be_printable(lead_id):
    raw = json.dumps({"vertical": "a", "lead_data": {}, "lead_id": lead_id}).encode()
    assert refused(decode_score, raw)[:3] == (422, "validation_error", "lead_id")
    batch = json.dumps({"vertical": "a", "leads": [{"lead_data": {}, "lead_id": lead_id}]})
    assert refused(decode_batch, batch.encode())[:3] == (
        422,
        "validation_error",
        "leads[0].lead_id",
    )


def test_other_routes_map_decoder_oddities_to_400():
    for exc in (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), RecursionError()):
        error = Service.to_api_error(exc)
        assert (error.status, error.type) == (400, "invalid_json")


def test_located_field_falls_back_to_msgspec_path():
    # msgspec stops at the number before it sees the body is cut short; the body cannot
    # be walked to find the key, so the error keeps msgspec's own path.
    truncated = b'{"vertical":"a","lead_data":{"a":1e400}'
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(truncated)
    assert refused(decode_score, truncated)[:3] == (422, "validation_error", "lead_data[...]")
