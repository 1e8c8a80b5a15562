"""Shared fixtures: the bundled fake Intercom on loopback, and a pipeline run against it.

Tests talk HTTP to the fake, write real DuckDB files under pytest's tmp dirs and run real
Dagster materialisations. Nothing touches the network beyond 127.0.0.1. Tools (not fixtures)
live in `iru_pipeline_tests.helpers`; tests import them from there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline_tests.helpers import (  # noqa: F401 (names kept importable from here)
    FAST_RETRY,
    SMALL,
    SPEC_PATH,
    TEST_PII_KEY,
    Loaded,
    fresh_progress_handler,
    pipeline_env,
    run_with_env,
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's real Intercom settings."""
    for name in list(os.environ):
        if name.startswith(("INTERCOM_", "IRU_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeIntercom]:
    """One fake for read-only tests. Tests that mutate data or inject faults use `fresh_fake`."""
    with FakeIntercom(seed=7, **SMALL) as server:
        yield server


@pytest.fixture
def fresh_fake() -> Iterator[FakeIntercom]:
    with FakeIntercom(seed=11, **SMALL) as server:
        yield server


@pytest.fixture(scope="session")
def loaded(fake: FakeIntercom, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """All three regions ingested once into a tmp DuckDB (no evidence)."""
    data_dir = tmp_path_factory.mktemp("loaded")
    env = pipeline_env(fake, data_dir)
    settings, result = run_with_env(env, with_evidence=False)
    assert not result.failed, [o.error for o in result.outcomes]
    return Loaded(fake, settings, env, result)
