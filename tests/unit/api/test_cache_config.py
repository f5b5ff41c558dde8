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
    assert built is not None
    cache = built[0]
    assert cache.max_size == 10_000 and cache.ttl == 3600


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
        ('{"backend": "redis"}', "backend 'redis' is not in this release"),
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
    assert first[1].key("auto", "1.0.0", 0, b"row") == second[1].key("auto", "1.0.0", 0, b"row")
