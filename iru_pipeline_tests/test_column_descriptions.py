"""Column descriptions: every column of every raw (`intercom.*`) and evidence table of a loaded
database carries a comment in DuckDB, and the Dagster materialisations' table schemas carry
the same text. And the ingestion's progress lines reach the Dagster run log."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from iru_pipeline.evidence.assets import evidence_key
from iru_pipeline.evidence.descriptions import EVIDENCE_DESCRIPTIONS, apply_evidence_comments
from iru_pipeline.evidence.tables import EVIDENCE_TABLES
from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_records.descriptions import apply_raw_comments
from iru_pipeline.intercom_source import RESOURCE_NAMES
from iru_pipeline_tests.helpers import pipeline_env, query, run_with_env, small_fake

SCHEMAS = ("intercom", "evidence")


@pytest.fixture(scope="module")
def demo_like(fake: FakeIntercom, tmp_path_factory: pytest.TempPathFactory):
    """The three regions ingested and the evidence derived, as `make demo` does."""
    data_dir = tmp_path_factory.mktemp("described")
    settings, result = run_with_env(pipeline_env(fake, data_dir))
    assert not result.failed, [o.error for o in result.outcomes]
    return settings, result


def _comments(db: Path) -> dict[tuple[str, str, str], str | None]:
    rows = query(db, "select c.schema_name, c.table_name, c.column_name, c.comment from duckdb_columns() c "
                     "join duckdb_tables() t using (database_name, schema_name, table_name) "
                     f"where c.schema_name in {SCHEMAS}")
    return {(s, t, c): comment for s, t, c, comment in rows}


def test_every_column_of_every_raw_and_evidence_table_has_a_comment(demo_like) -> None:
    settings, _ = demo_like
    comments = _comments(settings.duckdb_path)
    tables = {(s, t) for s, t, _ in comments}
    assert {("intercom", r) for r in RESOURCE_NAMES} <= tables
    assert {("intercom", "sync_results"), ("intercom", "collection_proofs")} <= tables
    assert {("evidence", t.name) for t in EVIDENCE_TABLES} <= tables
    missing = sorted(".".join(key) for key, comment in comments.items() if not (comment or "").strip())
    assert not missing, missing


def test_units_are_stated_for_durations(demo_like) -> None:
    comments = _comments(demo_like[0].duckdb_path)
    for column in ("time_to_assignment", "time_to_admin_reply", "time_to_first_close", "median_time_to_reply"):
        assert "seconds" in comments[("intercom", "conversations", column)]
    assert "seconds" in comments[("evidence", "evidence_support_request_sla", "p50_first_reply_s")]
    assert "hours" in comments[("evidence", "evidence_offboarding_check", "sla_hours")]
    assert "days" in comments[("evidence", "evidence_data_retention", "retention_days")]


def test_comments_are_applied_once(demo_like) -> None:
    con = duckdb.connect(str(demo_like[0].duckdb_path))
    try:
        assert apply_raw_comments(con) == 0
        assert apply_evidence_comments(con) == 0
    finally:
        con.close()


def _schema_descriptions(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, str | None]:
    event = instance.get_latest_materialization_event(key)
    assert event is not None and event.asset_materialization is not None, key
    schema = event.asset_materialization.metadata["dagster/column_schema"].value
    return {c.name: c.description for c in schema.columns}


def test_dagster_table_schemas_carry_the_same_descriptions(demo_like) -> None:
    from iru_pipeline.runner import prepare_instance

    settings, _ = demo_like
    comments = _comments(settings.duckdb_path)
    instance = prepare_instance(settings)
    for resource in RESOURCE_NAMES:
        described = _schema_descriptions(instance, dg.AssetKey(["intercom", resource]))
        assert described, resource
        for column, text in described.items():
            assert text and text == comments[("intercom", resource, column)], (resource, column, text)
    for table in EVIDENCE_TABLES:
        described = _schema_descriptions(instance, evidence_key(table.name))
        columns = {c for s, t, c in comments if (s, t) == ("evidence", table.name)}
        assert set(described) == columns, table.name
        for column, text in described.items():
            assert text and text == comments[("evidence", table.name, column)], (table.name, column, text)


def test_every_evidence_table_has_its_descriptions() -> None:
    assert {t.name for t in EVIDENCE_TABLES} <= set(EVIDENCE_DESCRIPTIONS)


def test_ingestion_progress_lines_reach_the_run_log(tmp_path: Path) -> None:
    """A real materialisation on an instance that does not manage the progress logger: the
    lines the terminal prints are in the run's event log, once each."""
    from iru_pipeline.config import load_settings
    from iru_pipeline.runner import run_pipeline

    with small_fake(contacts=120, conversations=80) as fake:
        env = pipeline_env(fake, tmp_path)
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            instance = dg.DagsterInstance.ephemeral()
            assert "iru_pipeline.progress" not in instance.managed_python_loggers
            result = run_pipeline(load_settings(), instance=instance, with_evidence=False,
                                  intercom_options={"max_retries": 4, "backoff_base_seconds": 0.01})
        assert not result.failed, [o.error for o in result.outcomes]
        ws = fake.workspace("us")
        contacts = sum(1 for _ in ws.contacts())
        # The conversations resource also yields a deletion marker per deleted conversation.
        conversations = sum(1 for _ in ws.conversations()) + len(ws.deleted_conversations())
        (run_id,) = [o.run_id for o in result.outcomes]
        messages = [e.user_message for e in instance.all_logs(run_id) if not e.is_dagster_event]
        assert messages.count(f"[us] contacts: done, {contacts} rows (0 unchanged skipped)") == 1, messages
        assert messages.count(f"[us] conversations: done, {conversations} rows (0 unchanged skipped)") == 1
        done_line = re.compile(r"\[us\] \w+: done, \d+ rows \(\d+ unchanged skipped\)")
        done = {m.split(":")[0] for m in messages if done_line.fullmatch(m)}
        assert done == {f"[us] {r}" for r in RESOURCE_NAMES}, messages
    # The step's handler is gone afterwards: nothing of a later run lands in this one.
    assert not [h for h in logging.getLogger("iru_pipeline.progress").handlers if type(h).__name__ == "_RunLogHandler"]


def test_an_instance_managing_the_progress_logger_logs_each_line_once(demo_like) -> None:
    """The data folder's instance (iru_pipeline/dagster.yaml) manages `iru_pipeline.progress`
    itself: the step adds nothing, so no line is doubled."""
    from iru_pipeline.runner import prepare_instance

    settings, result = demo_like
    instance = prepare_instance(settings)
    assert "iru_pipeline.progress" in instance.managed_python_loggers
    run_id = next(o.run_id for o in result.outcomes if o.label.startswith("ingest "))
    messages = [e.user_message for e in instance.all_logs(run_id) if not e.is_dagster_event]
    # A run of the three workspaces says each one's outcome in one line (docs/dagster.md).
    done = [m for m in messages if "] done: " in m]
    assert sorted(m.split("]")[0] for m in done) == ["[au", "[eu", "[us"], messages
    assert all(f"{len(RESOURCE_NAMES)} resources ok" in m for m in done), done
