"""The batch body limit and the body deadline (api.settings)."""

import pytest

from api.settings import BATCH_LEAD_BYTES, SettingsError, load_settings


def test_batch_body_limit_follows_max_batch():
    assert load_settings({}).max_batch_body_bytes == 500 * BATCH_LEAD_BYTES
    assert load_settings({"MAX_BATCH": "2000"}).max_batch_body_bytes == 2000 * BATCH_LEAD_BYTES
    # never below the single-request limit
    small = load_settings({"MAX_BATCH": "10", "MAX_BODY_BYTES": "65536"})
    assert small.max_batch_body_bytes == 65536


def test_batch_body_limit_and_body_deadline_can_be_set():
    settings = load_settings({"MAX_BATCH_BODY_BYTES": "300000", "BODY_TIMEOUT_SECONDS": "3"})
    assert settings.max_batch_body_bytes == 300_000 and settings.body_timeout_seconds == 3.0
    assert load_settings({}).body_timeout_seconds == 10.0


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"MAX_BATCH_BODY_BYTES": "12"}, "MAX_BATCH_BODY_BYTES"),
        ({"BODY_TIMEOUT_SECONDS": "0"}, "BODY_TIMEOUT_SECONDS"),
        ({"BODY_TIMEOUT_SECONDS": "soon"}, "BODY_TIMEOUT_SECONDS"),
    ],
)
def test_bad_limits_stop_the_service(env, name):
    with pytest.raises(SettingsError, match=name):
        load_settings(env)
