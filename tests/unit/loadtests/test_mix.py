"""The mix's settings as the runner writes them and the locustfile reads them back."""

from __future__ import annotations

import pytest

from loadtests import mix


def test_weights_parse_with_spaces_and_keep_their_order():
    weights = mix.parse_weights(" auto=50, home = 25,life=0.5 ", "V")
    assert list(weights.items()) == [("auto", 50.0), ("home", 25.0), ("life", 0.5)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("auto", "not name=weight"),
        ("=3", "not name=weight"),
        ("auto=x", "not a number"),
        ("auto=-1", ">= 0"),
        ("auto=nan", ">= 0"),
        ("auto=inf", ">= 0"),
        ("auto=1,auto=2", "given twice"),
        ("auto=0,home=0", "at least one weight must be positive"),
    ],
)
def test_bad_weights_are_refused_naming_the_variable(text, message):
    with pytest.raises(ValueError, match=message) as caught:
        mix.parse_weights(text, "LOADTEST_VERTICALS")
    assert str(caught.value).startswith("LOADTEST_VERTICALS: ")


def test_task_weights_know_the_kinds_and_are_whole():
    with pytest.raises(ValueError, match="unknown name 'scor'"):
        mix.parse_weights("scor=1", "T", mix.TASK_KINDS, whole=True)
    with pytest.raises(ValueError, match="whole number"):
        mix.parse_weights("score=1.5", "T", mix.TASK_KINDS, whole=True)
    assert mix.parse_weights("score=3,batch=0", "T", mix.TASK_KINDS, whole=True) == {
        "score": 3.0,
        "batch": 0.0,
    }


def test_ranges():
    assert mix.parse_range("10-50", "B") == (10.0, 50.0)
    assert mix.parse_range("0.5", "W") == (0.5, 0.5)
    for bad in ("50-10", "-1", "a-b", "1-inf"):
        with pytest.raises(ValueError, match=r"^W: "):
            mix.parse_range(bad, "W")


def test_reload_versions():
    assert mix.parse_reload_versions("") == []
    cycle = '[{"auto": "1.1.0"}, {"auto": "1.0.0", "home": "1.0.0"}]'
    assert mix.parse_reload_versions(cycle) == [
        {"auto": "1.1.0"},
        {"auto": "1.0.0", "home": "1.0.0"},
    ]
    for bad in ("{", '{"auto": "1.0.0"}', '[{"auto": 1}]', '["auto"]'):
        with pytest.raises(ValueError, match="LOADTEST_RELOAD_VERSIONS"):
            mix.parse_reload_versions(bad)


def test_settings_survive_the_trip_through_the_environment():
    settings = mix.MixSettings(
        verticals={"auto": 1.0, "life": 3.25},
        tasks={"score": 7.0, "invalid": 1.0},
        batch_size=(2, 9),
        wait=(0.0, 0.125),
        reload_seconds=2.5,
        reload_versions=[{"auto": "1.1.0"}, {"auto": "1.0.0"}],
        feedback_delay=0.75,
        seed=5,
        pool=300,
        expect_lost_leads=True,
    )
    assert mix.MixSettings.from_env(settings.to_env()) == settings
    assert mix.MixSettings.from_env({}) == mix.MixSettings()


def test_the_default_mix_is_the_documented_one():
    settings = mix.MixSettings()
    assert settings.verticals == {"auto": 50, "home": 25, "health": 15, "life": 10}
    assert settings.tasks["invalid"] / sum(settings.tasks.values()) == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOADTEST_BATCH_SIZE": "0-5"}, "LOADTEST_BATCH_SIZE"),
        ({"LOADTEST_BATCH_SIZE": "2.5"}, "LOADTEST_BATCH_SIZE"),
        ({"LOADTEST_RELOAD_SECONDS": "soon"}, "LOADTEST_RELOAD_SECONDS"),
        ({"LOADTEST_FEEDBACK_DELAY": "-1"}, "LOADTEST_FEEDBACK_DELAY"),
        ({"LOADTEST_TASKS": "score=1,fly=1"}, "LOADTEST_TASKS"),
    ],
)
def test_bad_environment_names_the_variable(env, message):
    with pytest.raises(ValueError, match=message):
        mix.MixSettings.from_env(env)


def test_every_name_maps_back_to_its_kind():
    names = {
        mix.score_name("auto"): "score",
        mix.score_name("home"): "score",
        mix.batch_name("life"): "batch",
        mix.invalid_name("unknown vertical"): "invalid",
        mix.FEEDBACK_PATH: "feedback",
        mix.FEEDBACK_BATCH_PATH: "feedback_batch",
        mix.RELOAD_PATH: mix.RELOAD,
        mix.LOST_NAME: mix.LOST,
        "Aggregated": None,
        "/health": None,
    }
    assert {name: mix.kind_of(name) for name in names} == names
