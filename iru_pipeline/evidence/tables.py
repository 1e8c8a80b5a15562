"""The evidence tables: name, SQL file, the raw resources each reads, and its row order.

One row here per table in schema `evidence`; the SQL that fills it is `sql/<name minus
"evidence_">.sql`. The order of `EVIDENCE_TABLES` is the order the assets depend on each
other and the order of files in an export. `order_by` is the table's natural key: exports
and the manifest digest sort rows by it, then by every other column (workspace_id among them), so
the same rows always give the same bytes. It is kept as earlier runs were hashed with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iru_pipeline.intercom_source import RESOURCE_NAMES

SQL_DIR = Path(__file__).with_name("sql")
COMMON_SQL = SQL_DIR / "_common.sql"
CONTROL_DAYS_SQL = SQL_DIR / "_control_days.sql"
"""The control-test history's day rule, a table macro for the history and the period export."""


@dataclass(frozen=True)
class EvidenceTable:
    name: str
    description: str
    reads: tuple[str, ...]
    """Raw resources (`intercom/<name>` assets) the SQL reads."""
    order_by: tuple[str, ...]
    after: tuple[str, ...] = ()
    """Evidence tables that must be written first in the same run."""
    preview: tuple[str, ...] = ()
    """Columns shown in the markdown preview of failing rows."""

    @property
    def sql_path(self) -> Path:
        return SQL_DIR / f"{self.name.removeprefix('evidence_')}.sql"

    @property
    def sql(self) -> str:
        return self.sql_path.read_text(encoding="utf-8")


_ACTIVITY = ("activity_logs",)
_DIRECTORY = ("workspaces", "admins", "teams", "team_memberships")
_FIRST = ("evidence_collection_stream",)
_SNAPSHOTS = ("workspaces", "admins", "teams", "team_memberships", "tags", "data_attributes")

EVIDENCE_TABLES: tuple[EvidenceTable, ...] = (
    EvidenceTable(
        "evidence_collection_stream",
        "One row per workspace and Intercom resource: the latest collection attempt (status, reason, "
        "windows, cursors, API calls, retries, 429s, rows, dropped fields) and activity-log coverage "
        "across runs (docs/evidence.md#tables).",
        reads=RESOURCE_NAMES, order_by=("region", "stream"),
        preview=("region", "stream", "status", "error_code", "reason"),
    ),
    EvidenceTable(
        "evidence_collection_proof",
        "Proof of collection: one row per response of a snapshot endpoint (/me, /admins, /teams, /tags, "
        "data attributes) in the latest collection of each workspace: when it was received, from which "
        "API base URL, HTTP status, Intercom request id and the SHA-256 of the body as received (the body "
        "is never stored). A response from a host other than Intercom's API is marked for review.",
        reads=_SNAPSHOTS, order_by=("region", "endpoint", "received_at", "body_sha256"), after=_FIRST,
        preview=("region", "endpoint", "api_base_url", "http_status", "request_id", "status"),
    ),
    EvidenceTable(
        "evidence_admin_access_review",
        "One row per admin per workspace: teams, seat, role, first seen, last activity and login, "
        "sign-in method, staleness, shared-account suspicion, HR match and approved exceptions.",
        reads=(*_DIRECTORY, *_ACTIVITY), order_by=("region", "admin_id"), after=_FIRST,
        preview=("region", "admin_id", "admin_email", "status", "findings"),
    ),
    EvidenceTable(
        "evidence_offboarding_check",
        "One row per person terminated in the HR roster and workspace: access still held, removal "
        "time and lag, activity after termination.",
        reads=("workspaces", "admins", *_ACTIVITY), order_by=("region", "hr_email"), after=_FIRST,
        preview=("region", "hr_email", "account_active_now", "activity_after_termination", "status"),
    ),
    EvidenceTable(
        "evidence_access_change_events",
        "One row per access-relevant activity-log event in the period: provisioning, privilege, team, "
        "authentication and vendor-access changes, who made them and whether they were allowed to.",
        reads=("workspaces", "admins", *_ACTIVITY), order_by=("region", "created_at", "event_id"), after=_FIRST,
        preview=("region", "created_at", "activity_type", "actor_email", "status", "findings"),
    ),
    EvidenceTable(
        "evidence_workspace_security_config",
        "One row per workspace and security setting: data region against API host, identity "
        "verification, authentication-method and two-factor changes, SSO share of logins, MFA "
        "enforcement (manual).",
        reads=("workspaces", "admins", *_ACTIVITY), order_by=("region", "setting_key"), after=_FIRST,
        preview=("region", "setting_key", "observed_value", "expected_value", "status"),
    ),
    EvidenceTable(
        "evidence_high_risk_activity",
        "One row per high-risk finding (rules R1-R8: login-failure bursts, exports, destructive and "
        "security changes, secrets, terminated or unknown actors, impersonation without consent) with "
        "its review trail.",
        reads=("workspaces", "admins", *_ACTIVITY), order_by=("region", "first_event_at", "finding_id"),
        after=_FIRST,
        preview=("region", "finding_id", "rule_id", "severity", "first_event_at", "actor_email", "status"),
    ),
    EvidenceTable(
        "evidence_data_retention",
        "One row per workspace and record type (conversations, users, leads): population, records past "
        "the retention period, oldest record, deletions in the period.",
        reads=("workspaces", "contacts", "conversations", "deleted_conversations", *_ACTIVITY),
        order_by=("region", "object_type"), after=_FIRST,
        preview=("region", "object_type", "population", "over_retention", "over_retention_pct", "status"),
    ),
    EvidenceTable(
        "evidence_personal_data_inventory",
        "Aggregate counts of the personal data held per workspace and record type: populated standard "
        "and custom attributes (sensitive-looking ones flagged), e-mail domain classes, domains "
        "(k-suppressed) and countries. No per-contact rows.",
        reads=("workspaces", "contacts", "conversations", "data_attributes"),
        order_by=("region", "object_type", "dimension", "dimension_value"), after=_FIRST,
        preview=("region", "object_type", "dimension", "dimension_value", "count", "status", "findings"),
    ),
    EvidenceTable(
        "evidence_support_request_sla",
        "One row per workspace, month, team and request class (all inbound, DSAR, security): first-reply "
        "and resolution times against the SLAs, late or unanswered requests.",
        reads=("workspaces", "teams", "conversations"),
        order_by=("region", "period_month", "request_class", "team_id"), after=_FIRST,
        preview=("region", "period_month", "request_class", "team_name", "conversations", "late_or_unanswered",
                 "status"),
    ),
    EvidenceTable(
        "evidence_findings",
        "One row per finding tracked across runs (high-risk activity, failing admin, access change): stable "
        "id, test, subject, first detected, last seen, resolved (reviewed, or gone from the data), reviewer and "
        "time to resolve in hours (docs/evidence.md#findings-across-runs).",
        reads=(), order_by=("region", "test_id", "first_detected_at", "finding_id"),
        after=("evidence_collection_stream", "evidence_admin_access_review", "evidence_access_change_events",
               "evidence_high_risk_activity"),
        preview=("region", "finding_id", "test_id", "subject_label", "first_detected_at", "status"),
    ),
    EvidenceTable(
        "evidence_control_tests",
        "One row per control test T01-T15 and workspace: status (pass / fail / review / manual / "
        "not_applicable / not_collected), population, failing and to-review counts, parameters and "
        "SOC 2 / ISO 27001 / GDPR mappings.",
        reads=(), order_by=("region", "test_id"),
        after=(
            "evidence_collection_stream", "evidence_collection_proof", "evidence_admin_access_review",
            "evidence_offboarding_check",
            "evidence_access_change_events", "evidence_workspace_security_config", "evidence_high_risk_activity",
            "evidence_data_retention", "evidence_personal_data_inventory", "evidence_support_request_sla",
            "evidence_findings",
        ),
        preview=("region", "test_id", "test_name", "status", "population", "failing", "to_review"),
    ),
    EvidenceTable(
        "evidence_control_test_history",
        "One row per control test, workspace and UTC day from the first evaluation in the period to the run: "
        "the status of that day's last run, or no_run (never carried over).",
        reads=(), order_by=("region", "test_id", "day"), after=("evidence_control_tests",),
        preview=("region", "test_id", "day", "status", "day_run_id"),
    ),
    EvidenceTable(
        "evidence_collection_run",
        "One row per run and workspace: what was collected, when, from which API host and version, "
        "totals, missing capabilities, parameters hash, and the run's manifest hash chained to the "
        "previous run's.",
        reads=("workspaces",), order_by=("region",),
        after=("evidence_control_tests", "evidence_control_test_history"),
        preview=("region", "workspace_id", "status", "missing_capabilities"),
    ),
)

TABLES_BY_NAME: dict[str, EvidenceTable] = {t.name: t for t in EVIDENCE_TABLES}
MANIFEST_TABLE = "evidence_collection_run"
PROOF_TABLE = "evidence_collection_proof"
"""Holds the hash chain, so it is the one table the chain does not cover."""
CHAINED_TABLES: tuple[str, ...] = tuple(t.name for t in EVIDENCE_TABLES if t.name != MANIFEST_TABLE)
