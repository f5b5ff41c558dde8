"""A worker's runtime in-process: verification at every load, status, and reload hooks.

Real trained and signed models in a real store, a real shared reload state; two
runtimes on one store stand for two workers.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from prometheus_client import REGISTRY

from api.reload_state import ReloadState
from api.runtime import ModelRuntime, ReloadFailed
from engine.config import ModelConfig
from engine.store import pointer
from engine.store.layout import atomic_write
from engine.store.manifest import decode_manifest
from engine.store.publish import publish
from engine.store.signing import Keyring, SigningKey, generate_keypair
from engine.training.pipeline import train_vertical

ENV = "unit-runtime"


class Store:
    def __init__(self, root: Path, key: SigningKey, keyring: Keyring) -> None:
        self.root = root
        self.key = key
        self.keyring = keyring


@pytest.fixture(scope="module")
def auto_config(demo_config: ModelConfig) -> ModelConfig:
    return msgspec.structs.replace(demo_config, verticals={"auto": demo_config.verticals["auto"]})


@pytest.fixture(scope="module")
def published(tmp_path_factory, auto_config, synth_csv) -> Store:
    """auto 1.0.0 (active) and 1.1.0, trained and signed once for the module."""
    base = tmp_path_factory.mktemp("runtime-store")
    generate_keypair(base / "keys")
    key = SigningKey.load(base / "keys" / "model-signing.key")
    keyring = Keyring.load(base / "keys" / "trusted")
    root = base / "models"
    csv = synth_csv("auto", 1200, seed=5)
    train_vertical(auto_config, "auto", csv, "1.0.0", root, key, activate_with=keyring)
    train_vertical(auto_config, "auto", csv, "1.1.0", root, key)
    return Store(root, key, keyring)


@pytest.fixture
def store(published: Store, tmp_path: Path) -> Store:
    """A private copy of the store: these tests tamper with it."""
    root = tmp_path / "models"
    shutil.copytree(published.root, root)
    return Store(root, published.key, published.keyring)


@pytest.fixture
def make_runtime(
    store: Store, auto_config: ModelConfig, tmp_path: Path
) -> Iterator[Callable[[int], ModelRuntime]]:
    state_path = tmp_path / "reload.state"
    ReloadState.create(state_path).close()
    made: list[ModelRuntime] = []

    def make(slot: int = 0) -> ModelRuntime:
        runtime = ModelRuntime(
            auto_config, store.root, store.keyring, ReloadState(state_path), slot, ENV
        )
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        for model in runtime.scorer.models.values():
            model.close()
        runtime.state.close()


def flip_byte(path: Path) -> bytes:
    """Flip one bit of a file's last byte as an attacker would; return the original."""
    original = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    return original


def restore(path: Path, original: bytes) -> None:
    path.write_bytes(original)
    path.chmod(0o444)


def rejections(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "ml_model_rejections_total", {"vertical": "auto", "reason": reason, "environment": ENV}
    )
    return value or 0.0


def unserved() -> float | None:
    return REGISTRY.get_sample_value(
        "ml_model_active_unserved", {"vertical": "auto", "environment": ENV}
    )


def reason_of(runtime: ModelRuntime) -> str | None:
    return runtime.status["auto"].reason


def hook_failures() -> float:
    value = REGISTRY.get_sample_value("ml_reload_hook_failures_total", {"environment": ENV})
    return value or 0.0


def test_start_refuses_a_tampered_active_version(store, make_runtime):
    flip_byte(store.root / "auto" / "v1.0.0" / "model.txt")
    before = rejections("hash")
    runtime = make_runtime(0)
    runtime.load_initial()
    assert runtime.versions() == {"auto": None}
    status = runtime.status["auto"]
    assert (status.served, status.active, status.reason) == (None, "1.0.0", "hash")
    assert status.problem is not None and "model.txt" in status.problem
    assert status.problem.endswith("nothing is served")
    assert rejections("hash") == before + 1 and unserved() == 1


def test_every_reload_reverifies_the_served_version(store, make_runtime):
    runtime = make_runtime(0)
    runtime.load_initial()
    assert runtime.problems == {} and unserved() == 0
    model_txt = store.root / "auto" / "v1.0.0" / "model.txt"
    original = flip_byte(model_txt)
    before = rejections("hash")

    with pytest.raises(ReloadFailed) as refused:
        asyncio.run(runtime.reload(None))
    assert refused.value.check == "hash" and refused.value.vertical == "auto"
    assert refused.value.reason.startswith("auto: CURRENT names 1.0.0, refused: hash check")
    assert runtime.versions() == {"auto": "1.0.0"}  # the copy verified at load serves on
    assert "serving 1.0.0 as verified when it was loaded" in runtime.problems["auto"]
    assert rejections("hash") == before + 1 and unserved() == 1

    restore(model_txt, original)
    asyncio.run(runtime.reload(None))
    assert runtime.problems == {} and unserved() == 0


def test_a_refused_sync_keeps_the_old_version_and_says_why(store, make_runtime, caplog):
    runtime = make_runtime(0)
    runtime.load_initial()
    current = store.root / "auto" / "CURRENT"
    atomic_write(current, b"../../etc\n")
    runtime.state.bump()  # what SIGHUP does
    before = rejections("pointer")
    with caplog.at_level(logging.INFO, logger="ml_service.runtime"):
        asyncio.run(runtime.sync())
    assert runtime.generation == runtime.state.generation()
    assert runtime.versions() == {"auto": "1.0.0"}
    status = runtime.status["auto"]
    assert (status.active, status.reason) == (None, "pointer")
    assert "CURRENT is unusable: auto/CURRENT holds '../../etc\\n'" in (status.problem or "")
    assert rejections("pointer") == before + 1
    refused = [r for r in caplog.records if r.getMessage() == "model version refused"]
    assert [(r.__dict__["vertical"], r.__dict__["reason"]) for r in refused] == [
        ("auto", "pointer")
    ]

    atomic_write(current, b"1.0.0\n")
    runtime.state.bump()
    with caplog.at_level(logging.INFO, logger="ml_service.runtime"):
        asyncio.run(runtime.sync())
    assert runtime.problems == {}
    assert any(r.getMessage() == "model problem resolved" for r in caplog.records)


def test_reload_hooks_run_on_every_reload_and_a_failure_stops_nothing(store, make_runtime):
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("keyring unreadable")

    runtime = make_runtime(0)
    runtime.reload_hooks.extend([lambda: calls.append("first"), broken])
    runtime.reload_hooks.append(lambda: calls.append("last"))
    runtime.load_initial()
    assert calls == []  # not on the initial load
    failures = hook_failures()

    async def scenario() -> None:
        # The admin reload this worker answers.
        generation = await runtime.reload({"auto": "1.1.0"})
        assert runtime.generation == generation and runtime.versions() == {"auto": "1.1.0"}
        assert calls == ["first", "broken", "last"]
        # Another worker's reload (or SIGHUP) reaches this one through the watcher's sync.
        runtime.state.bump()
        await runtime.sync()
        assert calls[3:] == ["first", "broken", "last"]
        # A rollback switches through sync: hooks run once.
        await runtime.rollback("auto")
        assert runtime.versions() == {"auto": "1.0.0"}
        assert calls[6:] == ["first", "broken", "last"]
        # A refused reload changes nothing, so no hook runs.
        with pytest.raises(ReloadFailed):
            await runtime.reload({"auto": "9.9.9"})
        assert len(calls) == 9

    asyncio.run(scenario())
    assert hook_failures() == failures + 3
    assert runtime.generation == runtime.state.generation()


def test_a_version_that_verifies_but_does_not_load_is_refused_as_load(store, make_runtime):
    source = store.root / "auto" / "v1.1.0"
    manifest = decode_manifest((source / "manifest.json").read_bytes())
    files = {n: (source / n).read_bytes() for n in manifest.files}
    files["model.txt"] = b"not a LightGBM model\n"  # signed by the trusted key all the same

    def fields(hashes: dict[str, str]):
        return msgspec.structs.replace(manifest, version="1.2.0", files=hashes)

    publish(store.root, "auto", "1.2.0", files, fields, store.key)
    runtime = make_runtime(0)
    runtime.load_initial()
    before = rejections("load")
    with pytest.raises(ReloadFailed) as refused:
        asyncio.run(runtime.reload({"auto": "1.2.0"}))
    assert refused.value.check == "load" and "verifies but does not load" in refused.value.reason
    assert pointer.read_current(store.root, "auto") == "1.0.0"  # nothing changed

    atomic_write(store.root / "auto" / "CURRENT", b"1.2.0\n")  # moved behind our back
    runtime.state.bump()
    asyncio.run(runtime.sync())
    assert runtime.versions() == {"auto": "1.0.0"}
    assert reason_of(runtime) == "load"
    asyncio.run(runtime.audit())  # an audit verifies, but remembers the load failure
    assert reason_of(runtime) == "load"
    assert rejections("load") == before + 2


def test_another_workers_refusal_and_in_place_tampering_show_in_an_audit(store, make_runtime):
    first, second = make_runtime(0), make_runtime(1)
    first.load_initial()
    second.load_initial()
    before = rejections("hash")
    encoder = next((store.root / "auto" / "v1.1.0").glob("encoders.*.npy"))
    original = flip_byte(encoder)
    atomic_write(store.root / "auto" / "CURRENT", b"1.1.0\n")
    with pytest.raises(ReloadFailed):
        asyncio.run(first.reload(None))  # the worker that answered the API call
    assert reason_of(first) == "hash"
    assert reason_of(second) is None  # has not looked yet
    asyncio.run(second.audit())
    assert reason_of(second) == "hash"
    assert encoder.name in (second.problems["auto"])
    assert rejections("hash") == before + 1  # an audit reports; it refuses no load

    restore(encoder, original)
    asyncio.run(second.audit())
    assert reason_of(second) == "pending"  # good now, not loaded yet
    assert "CURRENT names 1.1.0, not loaded here yet" in second.problems["auto"]
    asyncio.run(first.reload(None))
    asyncio.run(second.sync())
    assert first.versions() == second.versions() == {"auto": "1.1.0"}
    assert first.problems == second.problems == {}

    served = store.root / "auto" / "v1.1.0" / "model.txt"
    flip_byte(served)  # tampered in place, no reload at all
    asyncio.run(second.audit())
    assert reason_of(second) == "hash"
    assert second.versions() == {"auto": "1.1.0"}


def _mapped(path: Path) -> int:
    """How many mappings of ``path`` this process holds."""
    return Path("/proc/self/maps").read_text().count(f" {path}\n")


def test_a_reload_maps_the_new_layout_before_unmapping_the_old(store, make_runtime):
    old = store.root / "auto" / "v1.0.0" / "model.layout"
    new = store.root / "auto" / "v1.1.0" / "model.layout"
    runtime = make_runtime(0)
    runtime.load_initial()
    assert (_mapped(old), _mapped(new)) == (1, 0)
    at_install: list[tuple[int, int]] = []
    install = runtime.scorer.install

    def watched(model):  # the real install, with a look at the mappings first
        at_install.append((_mapped(old), _mapped(new)))
        return install(model)

    runtime.scorer.install = watched
    atomic_write(store.root / "auto" / "CURRENT", b"1.1.0\n")
    asyncio.run(runtime.reload(None))
    assert runtime.versions() == {"auto": "1.1.0"}
    assert at_install == [(1, 1)]  # both mapped while the new one is installed
    assert (_mapped(old), _mapped(new)) == (0, 1)  # then the old one is released
