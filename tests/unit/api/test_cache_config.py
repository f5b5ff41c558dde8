"""CACHE_CONFIG: off by default, the seed's form accepted, every bad value refused by name."""

from __future__ import annotations

import pytest

from api.cache_config import CacheConfig, CacheError, parse_cache_config
from api.prediction_cache import build
from api.settings import SettingsError, load_settings


def test_unset_means_no_cache_and_the_seed_form_works():
    assert parse_cache_config(None) == CacheConfig(enable=False)
    assert build(parse_cache_config("")) is None
    seed = parse_cache_config('{"enable": true, "ttl": 3600}')
    assert seed.enable and seed.ttl == 3600 and seed.max_size == 10_000
    assert seed.backend == "memory"
    built = build(seed)
    assert built is not None and built.redis is None
    cache = built.memory
    assert cache is not None and cache.max_size == 10_000 and cache.ttl == 3600


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("nope", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"enabled": true}', "unknown key 'enabled'"),
        ('{"enable": "yes"}', "enable must be true or false"),
        ('{"ttl": 0}', "ttl must be a number"),
        ('{"ttl": true}', "ttl must be a number"),
        ('{"max_size": 0}', "max_size must be a whole number"),
        ('{"max_size": 1.5}', "max_size must be a whole number"),
        ('{"backend": "disk"}', "backend must be one of"),
        ('{"enable": true, "backend": "redis"}', "needs a secret_file"),
        ('{"enable": true, "backend": "tiered"}', "needs a secret_file"),
        ('{"secret_file": 3}', "secret_file must be a path"),
    ],
)
def test_bad_values_name_the_variable_and_the_key(raw, names):
    with pytest.raises(CacheError) as caught:
        parse_cache_config(raw)
    assert "CACHE_CONFIG" in str(caught.value) and names in str(caught.value)


def test_a_secret_file_must_be_readable_and_long_enough(tmp_path):
    short = tmp_path / "short"
    short.write_bytes(b"x" * 8)
    with pytest.raises(SettingsError, match="secret_file"):
        load_settings({"CACHE_CONFIG": f'{{"enable": true, "secret_file": "{short}"}}'})
    with pytest.raises(SettingsError, match="secret_file"):
        load_settings({"CACHE_CONFIG": f'{{"enable": true, "secret_file": "{tmp_path / "no"}"}}'})
    good = tmp_path / "good"
    good.write_bytes(b"k" * 32)
    settings = load_settings({"CACHE_CONFIG": f'{{"enable": true, "secret_file": "{good}"}}'})
    first, second = build(settings.cache), build(settings.cache)
    assert first is not None and second is not None
    # One secret: the same key in every worker.
    assert first.keyer.key("auto", "1.0.0", 0, b"row") == second.keyer.key(
        "auto", "1.0.0", 0, b"row"
    )


def test_a_shared_backend_needs_redis_url(tmp_path):
    secret = tmp_path / "key"
    secret.write_bytes(b"k" * 32)
    raw = f'{{"enable": true, "backend": "tiered", "secret_file": "{secret}"}}'
    with pytest.raises(SettingsError, match="needs REDIS_URL"):
        load_settings({"CACHE_CONFIG": raw})
    settings = load_settings({"CACHE_CONFIG": raw, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert settings.cache.backend == "tiered"
    with pytest.raises(ValueError, match="needs a Redis link"):
        build(settings.cache)  # the worker passes its link; without one it cannot build
