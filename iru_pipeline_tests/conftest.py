"""Shared fixtures: the bundled fake Intercom on loopback, and a pipeline run against it.

Tests talk HTTP to the fake, write real DuckDB files under pytest's tmp dirs and run real
Dagster materialisations. Nothing touches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from iru_pipeline.config import Settings, load_settings
from iru_pipeline.fake_intercom import FakeIntercom

TEST_PII_KEY = "e95f09e8a0bcd894259eb923605ba55128f5557365ed4ef877e1a37074e8aca5"  # secrets.token_hex(32)
FAST_RETRY = {"max_retries": 4, "backoff_base_seconds": 0.01}
SMALL = dict(contacts=600, conversations=400)
SPEC_PATH = Path(os.environ.get("IRU_INTERCOM_SPEC") or Path(__file__).resolve().parents[2] / "shared/reference/intercom-openapi.yaml")


def pipeline_env(fake: FakeIntercom, data_dir: Path, regions: tuple[str, ...] | None = None) -> dict[str, str]:
    """Environment variables that point the pipeline at the fake and a tmp data folder."""
    env = {"IRU_DUCKDB_PATH": str(data_dir / "iru.duckdb"), "IRU_PII_KEY": TEST_PII_KEY}
    for region in regions or tuple(fake.regions):
        env[f"INTERCOM_ACCESS_TOKEN_{region.upper()}"] = fake.token(region)
        env[f"INTERCOM_BASE_URL_{region.upper()}"] = fake.base_url(region)
    return env


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


@dataclass
class Loaded:
    fake: FakeIntercom
    settings: Settings
    env: dict[str, str]
    result: Any


def run_with_env(env: dict[str, str], **kwargs: Any) -> tuple[Settings, Any]:
    """Run the pipeline in process with `env` applied for the duration of the run."""
    from iru_pipeline.runner import run_pipeline

    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("INTERCOM_", "IRU_")):
                mp.delenv(name)
        for key, value in env.items():
            mp.setenv(key, value)
        settings = load_settings()
        kwargs.setdefault("intercom_options", FAST_RETRY)
        result = run_pipeline(settings, **kwargs)
    return settings, result


@pytest.fixture(scope="session")
def loaded(fake: FakeIntercom, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """All three regions ingested once into a tmp DuckDB (no evidence)."""
    data_dir = tmp_path_factory.mktemp("loaded")
    env = pipeline_env(fake, data_dir)
    settings, result = run_with_env(env, with_evidence=False)
    assert not result.failed, [o.error for o in result.outcomes]
    return Loaded(fake, settings, env, result)
