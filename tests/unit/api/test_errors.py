import asyncio

import msgspec
import pytest
from starlette.requests import ClientDisconnect

from api.deadlines import BodyDeadlines
from api.errors import (
    ECHO_LIMIT,
    MESSAGE_LIMIT,
    ApiError,
    decode_error,
    echo,
    error_body,
    read_body,
    split_validation_message,
)
from api.schemas import BATCH_DECODER, RELOAD_DECODER, SCORE_DECODER, ErrorResponse


@pytest.mark.parametrize(
    ("body", "decoder", "field", "fragment"),
    [
        (b'{"lead_data": {}}', SCORE_DECODER, "vertical", "missing required field"),
        (b'{"vertical": 1, "lead_data": {}}', SCORE_DECODER, "vertical", "Expected `str`"),
        (b'{"vertical": "a", "lead_data": {}, "x": 1}', SCORE_DECODER, "x", "unknown field"),
        (b'{"vertical": "", "lead_data": {}}', SCORE_DECODER, "vertical", "length >= 1"),
        (b"[]", SCORE_DECODER, None, "Expected `object`, got `array`"),
        (
            b'{"vertical": "a", "leads": [{"lead_data": 3}]}',
            BATCH_DECODER,
            "leads[0].lead_data",
            "Expected `object`",
        ),
        (
            b'{"vertical": "a", "leads": [{}]}',
            BATCH_DECODER,
            "leads[0].lead_data",
            "missing required field",
        ),
        (b'{"versions": {"auto": 1}}', RELOAD_DECODER, "versions[...]", "Expected `str`"),
    ],
)
def test_validation_errors_name_the_field(body, decoder, field, fragment):
    with pytest.raises(msgspec.ValidationError) as info:
        decoder.decode(body)
    error = decode_error(info.value)
    assert (error.status, error.type, error.field) == (422, "validation_error", field)
    assert fragment in error.message and " - at " not in error.message


def test_not_json_is_400():
    with pytest.raises(msgspec.DecodeError) as info:
        SCORE_DECODER.decode(b"{nope")
    error = decode_error(info.value)
    assert (error.status, error.type, error.field) == (400, "invalid_json", None)


def test_split_keeps_plain_messages():
    assert split_validation_message("Expected `int`") == (None, "Expected `int`")


# -- echoing client strings, and error bodies that always encode -------------------------


def test_echo_bounds_and_escapes_client_strings():
    assert echo("vehicle_make") == "vehicle_make"
    assert echo("k" * 500) == "k" * ECHO_LIMIT + "…"
    assert echo("a\x00b\nc\ud800") == "a\\u0000b\\u000ac\\ud800"
    assert echo("é ✓") == "é ✓"  # printable non-ASCII stays readable


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("lone \ud800 surrogate", None),
        ("fine", "lead_data.\udcff"),
        ("x" * 100_000, "y" * 100_000),
        ("nul \x00 and newline \n", "a\x00b"),
    ],
)
def test_error_body_always_encodes(message, field):
    body = error_body("validation_error", message, field)
    decoded = msgspec.json.decode(body, type=ErrorResponse)
    assert decoded.error.type == "validation_error"
    assert len(body) < 2 * MESSAGE_LIMIT + 200


def test_unknown_field_name_is_echoed_bounded():
    name = "z\x00" * 3000
    with pytest.raises(msgspec.ValidationError) as info:
        SCORE_DECODER.decode(msgspec.json.encode({"vertical": "a", "lead_data": {}, name: 1}))
    error = decode_error(info.value)
    assert error.field == echo(name)
    assert error.message == f"Object contains unknown field `{echo(name)}`"
    assert len(error.message) < 500


def test_closing_statuses_close_the_connection():
    assert ApiError(413, "payload_too_large", "m").response().headers["connection"] == "close"
    assert ApiError(408, "request_timeout", "m").response().headers["connection"] == "close"
    assert "connection" not in ApiError(422, "validation_error", "m").response().headers


# -- reading bodies ----------------------------------------------------------------------


class Upload:
    """An ASGI receive; ``more_body`` as uvicorn's request cycle has it."""

    def __init__(self, chunks, more_body=True, then=None):
        self.chunks = list(chunks)
        self.more_body = more_body
        self.then = then

    async def receive(self):
        if self.chunks:
            chunk = self.chunks.pop(0)
            more = bool(self.chunks) or self.then is not None
            return {"type": "http.request", "body": chunk, "more_body": more}
        if self.then is not None:
            return await self.then()
        return {"type": "http.disconnect"}


def read(upload, content_type="application/json", length=None, limit=100, deadlines=None):
    kwargs = {"deadlines": deadlines} if deadlines is not None else {}
    return asyncio.run(read_body(upload.receive, content_type, length, limit, **kwargs))


def test_read_body_whole_and_in_chunks():
    assert read(Upload([b'{"a": 1}'], more_body=False)) == b'{"a": 1}'
    assert read(Upload([b'{"a"', b": ", b"1}"])) == b'{"a": 1}'
    # A receive that claims the body arrived yet sends more is still read to its end.
    assert read(Upload([b"[1,", b"2]"], more_body=False)) == b"[1,2]"


@pytest.mark.parametrize(
    ("upload", "length", "fragment"),
    [
        (Upload([b"x" * 101], more_body=False), None, "over 100 bytes"),
        (Upload([b"x" * 60, b"x" * 60]), None, "over 100 bytes"),
        (Upload([b"{}"], more_body=False), "999999999999999999999", "999999999999999999999 bytes"),
    ],
)
def test_read_body_refuses_too_much(upload, length, fragment):
    with pytest.raises(ApiError) as info:
        read(upload, length=length)
    assert info.value.status == 413 and fragment in info.value.message


def test_read_body_ignores_a_content_length_that_is_not_ascii_digits():
    # "²".isdigit() is True but int("²") fails: such a header must not become a 500.
    assert read(Upload([b"{}"], more_body=False), length="²") == b"{}"


def test_read_body_quotes_a_huge_content_type_bounded():
    with pytest.raises(ApiError) as info:
        read(Upload([b"{}"]), content_type="text/" + "x" * 50_000)
    assert info.value.status == 415 and len(info.value.message) < 200
    with pytest.raises(ApiError, match="missing"):
        read(Upload([b"{}"]), content_type=None)


def test_read_body_client_gone():
    with pytest.raises(ClientDisconnect):
        read(Upload([]))
    with pytest.raises(ClientDisconnect):
        read(Upload([], more_body=False))


def test_a_read_past_its_deadline_is_408():
    clock = [0.0]
    deadlines = BodyDeadlines(timeout=5.0, clock=lambda: clock[0])

    async def never():
        clock[0] = 10.0
        deadlines.expire()  # what the worker's tick does
        await asyncio.sleep(3600)

    with pytest.raises(ApiError) as info:
        read(Upload([b'{"a": '], then=never), deadlines=deadlines)
    assert (info.value.status, info.value.type) == (408, "request_timeout")
    assert "5 s" in info.value.message and deadlines.reading == 0


def test_a_cancellation_that_is_not_the_deadline_propagates():
    deadlines = BodyDeadlines(timeout=5.0)

    async def main():
        async def cancelled():
            raise asyncio.CancelledError

        await read_body(Upload([], then=cancelled).receive, "application/json", None, 9, deadlines)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    assert deadlines.reading == 0
