"""The test environment: settings that point the pipeline at the bundled fake, in-process
runs, small fakes, and the progress-handler reset every test gets (see conftest.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from iru_pipeline.config import Settings, load_settings
from iru_pipeline.fake_intercom import FakeIntercom

ROOT = Path(__file__).resolve().parents[2]
TEST_PII_KEY = "e95f09e8a0bcd894259eb923605ba55128f5557365ed4ef877e1a37074e8aca5"  # secrets.token_hex(32)
FAST_RETRY = {"max_retries": 4, "backoff_base_seconds": 0.01}
FAST = {"max_retries": 6, "backoff_base_seconds": 0.01}
"""Retry options for in-process runs: the product's bounds, with millisecond backoff."""
SMALL = dict(contacts=600, conversations=400)
SPEC_PATH = Path(os.environ.get("IRU_INTERCOM_SPEC") or ROOT.parent / "shared/reference/intercom-openapi.yaml")


def pipeline_env(fake: FakeIntercom, data_dir: Path, regions: tuple[str, ...] | None = None) -> dict[str, str]:
    """Environment variables that point the pipeline at the fake and a tmp data folder."""
    env = {"IRU_DUCKDB_PATH": str(data_dir / "iru.duckdb"), "IRU_PII_KEY": TEST_PII_KEY}
    for region in regions or tuple(fake.regions):
        env[f"INTERCOM_ACCESS_TOKEN_{region.upper()}"] = fake.token(region)
        env[f"INTERCOM_BASE_URL_{region.upper()}"] = fake.base_url(region)
    return env


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


def small_fake(seed: int = 23, regions: tuple[str, ...] = ("us",), **kwargs: Any) -> FakeIntercom:
    """A fake of a few hundred records (not started: use it as a context manager)."""
    kwargs.setdefault("contacts", 300)
    kwargs.setdefault("conversations", 200)
    return FakeIntercom(seed=seed, regions=regions, **kwargs)


def cli_env(env: dict[str, str]) -> dict[str, str]:
    """The test's environment without any real Intercom or iru settings, plus `env`."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("INTERCOM_", "IRU_", "DAGSTER_", "PYTEST_"))}
    base.update(env)
    base["PYTHONUNBUFFERED"] = "1"
    return base


@pytest.fixture(autouse=True)
def fresh_progress_handler() -> Iterator[None]:
    """`enable_progress` (called by `main(["run"])`) binds its handler to the sys.stderr of the
    moment, which under pytest is that test's capture: drop it around each test so progress
    lines reach this test's capsys (and caplog), and no later test writes to a closed stream."""
    logger = logging.getLogger("iru_pipeline.progress")

    def drop() -> None:
        for handler in [h for h in logger.handlers if getattr(h, "_iru_progress", False)]:
            logger.removeHandler(handler)
        logger.propagate = True  # enable_progress turns it off; caplog needs it on

    drop()
    yield
    drop()

