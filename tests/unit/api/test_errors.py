import msgspec
import pytest

from api.errors import decode_error, split_validation_message
from api.schemas import BATCH_DECODER, RELOAD_DECODER, SCORE_DECODER


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
