"""No token, no PII key, no message body and no clear contact e-mail anywhere the pipeline
writes: DuckDB, the dlt pipelines dir, Dagster storage and logs, and the terminal."""

from __future__ import annotations

from pathlib import Path

from iru_pipeline.cli import main
from iru_pipeline.fake_intercom import MESSAGE_BODY_MARKER, FakeIntercom
from iru_pipeline_tests.helpers import (
    TEST_PII_KEY,
    files_containing,
    pipeline_env,
    tables_containing,
)


def needles_for(fake: FakeIntercom) -> dict[str, str]:
    needles = {f"token_{r}": fake.token(r) for r in fake.regions}
    needles["pii_key"] = TEST_PII_KEY
    needles["message_body"] = MESSAGE_BODY_MARKER
    for region in fake.regions:
        contacts = [c for c in fake.workspace(region).contacts() if c.get("email")]
        for i, c in enumerate(contacts[:40]):
            needles[f"contact_email_{region}_{i}"] = c["email"]
        phones = [c for c in fake.workspace(region).contacts() if c.get("phone")]
        for i, c in enumerate(phones[:10]):
            needles[f"contact_phone_{region}_{i}"] = c["phone"]
    return needles


def test_nothing_secret_or_personal_is_written(fresh_fake: FakeIntercom, tmp_path: Path, monkeypatch, capsys) -> None:
    for key, value in pipeline_env(fresh_fake, tmp_path).items():
        monkeypatch.setenv(key, value)
    assert main(["run", "--reconcile"]) == 0
    # Error paths leak most: a revoked token mid-run in one region, 5xx and drops in another.
    fresh_fake.workspace("us").update_contacts(count=50)
    fresh_fake.faults("eu").update(revoke_token_after=3)
    fresh_fake.faults("us").update(error_every=4, drop_every=7)
    assert main(["run"]) == 1
    captured = capsys.readouterr()
    terminal = captured.out + captured.err
    assert "[eu]" in terminal and "rejected the access token" in terminal

    needles = needles_for(fresh_fake)
    assert files_containing(tmp_path, needles) == []
    assert tables_containing(tmp_path / "iru.duckdb", needles) == []
    assert [name for name, value in needles.items() if value in terminal] == []
