"""What each column of the raw `intercom.*` tables holds: the one source of the column
comments in DuckDB (`COMMENT ON COLUMN`, applied after every load) and of the column
descriptions in Dagster's table schema metadata (docs/dagster.md#column-descriptions).

Keyed by table, then column; `COMMON` covers the columns many tables share and a table's own
entry wins over it. Units are stated: durations are whole seconds unless the name says
otherwise, timestamps are UTC (`timestamptz`). `apply_column_comments` and `column_schema`
serve the evidence tables too (evidence/descriptions.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

Descriptions = Mapping[str, Mapping[str, str]]

COMMON: dict[str, str] = {
    "region": "Region code of the Intercom workspace (us, eu or au): which regional API host it was read from.",
    "workspace_id": "Intercom workspace (app) id, from GET /me.",
    "id": "Intercom id of the record.",
    "_dlt_load_id": "dlt load id of the load that last wrote this row (lineage; joins intercom._dlt_loads).",
    "_dlt_id": "dlt's unique row id.",
    "_dlt_valid_from": "Snapshot history (SCD2): UTC time from which this version of the record was seen.",
    "_dlt_valid_to": "Snapshot history (SCD2): UTC time after which this version was no longer seen; "
                     "null while it is current.",
    "created_at": "When Intercom created the record (UTC).",
    "updated_at": "When Intercom last updated the record (UTC); the incremental cursor.",
    "deleted_at": "When the record was deleted in Intercom (UTC); null while it exists.",
    "run_id": "Dagster run id of the ingestion run.",
}

_CONTACT_TIMES = {
    "signed_up_at": "When the user signed up (UTC), as Intercom reports it.",
    "last_seen_at": "When the contact was last seen in the product (UTC).",
    "last_replied_at": "When the contact last replied to a conversation (UTC).",
    "last_contacted_at": "When the workspace last contacted the contact (UTC).",
    "last_email_opened_at": "When the contact last opened an e-mail (UTC).",
    "last_email_clicked_at": "When the contact last clicked a link in an e-mail (UTC).",
}

RAW_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "workspaces": {
        "id": "Intercom workspace (app) id.",
        "name": "Workspace name.",
        "reported_region": "Data hosting region the workspace reports (GET /me app.region).",
        "timezone": "Workspace time zone (IANA name), used for business hours.",
        "identity_verification": "Whether identity verification (signed user hashes) is enabled for the Messenger.",
        "secure": "Intercom's `secure` flag of the workspace.",
        "created_at": "When the workspace was created (UTC).",
        "api_host": "API host the workspace was read from (proof of the data region).",
        "api_version": "Intercom API version requested (Intercom-Version header).",
        "token_admin_id": "Admin id the access token belongs to (GET /me).",
    },
    "admins": {
        "id": "Intercom admin (teammate) id.",
        "name": "Admin's display name.",
        "email": "Admin's e-mail address, in clear (access reviews must name people).",
        "job_title": "Admin's job title.",
        "away_mode_enabled": "Whether the admin is in away mode.",
        "away_mode_reassign": "Whether conversations are reassigned while the admin is away.",
        "away_status_reason_id": "Id of the away status reason, if any.",
        "has_inbox_seat": "Whether the admin holds a paid inbox seat.",
        "team_ids": "Ids of the teams the admin belongs to (JSON array).",
        "role_id": "Id of the admin's role (teammate permissions); null when the API gives none.",
        "role_name": "Name of the admin's role; null when the API gives none.",
        "primary_team_ids": "Ids of the admin's primary teams (JSON array).",
        "secondary_team_ids": "Ids of the admin's secondary teams (JSON array).",
    },
    "teams": {
        "id": "Intercom team id.",
        "name": "Team name.",
        "admin_ids": "Ids of the team's admins (JSON array).",
        "assignment_limit": "Maximum open conversations assigned per teammate (conversations); null if none.",
        "distribution_method": "How conversations are distributed in the team (e.g. round_robin, balanced).",
    },
    "team_memberships": {
        "id": "Membership key: <team id>:<admin id>.",
        "team_id": "Intercom team id.",
        "admin_id": "Intercom admin id of the member.",
        "team_name": "Team name at the time of the snapshot.",
    },
    "tags": {
        "id": "Intercom tag id.",
        "name": "Tag name.",
    },
    "data_attributes": {
        "id": "Row key: <model>:<full name> (standard attributes have no Intercom id).",
        "attribute_id": "Intercom data attribute id (null for standard attributes).",
        "model": "Model the attribute belongs to: contact, company or conversation.",
        "name": "Attribute name.",
        "full_name": "Attribute path as used in the API (e.g. custom_attributes.plan).",
        "label": "Attribute label shown in the Intercom UI.",
        "data_type": "Attribute data type (string, integer, float, boolean, date, ...).",
        "custom": "Whether the attribute is custom (defined by the workspace) rather than standard.",
        "archived": "Whether the attribute is archived.",
        "api_writable": "Whether the attribute can be written through the API.",
        "ui_writable": "Whether the attribute can be written in the Intercom UI.",
        "messenger_writable": "Whether the attribute can be written from the Messenger.",
        "created_at": "When the attribute was created (UTC).",
        "updated_at": "When the attribute was last updated (UTC).",
        "admin_id": "Admin who created the attribute.",
    },
    "contacts": {
        "id": "Intercom contact id.",
        "role": "Contact role: user or lead.",
        "email_hmac": "HMAC-SHA256 pseudonym of the normalised e-mail address (workspace key); the address is "
                      "never stored.",
        "phone_hmac": "HMAC-SHA256 pseudonym of the normalised phone number; the number is never stored.",
        "external_id_hmac": "HMAC-SHA256 pseudonym of the contact's external id; the id is never stored.",
        "email_domain": "Domain part of the e-mail address.",
        "has_email": "Whether the contact has an e-mail address.",
        "is_internal_domain": "Whether the e-mail domain is one of the configured internal domains.",
        "email_has_plus_tag": "Whether the e-mail local part has a +tag.",
        "email_looks_test": "Whether the e-mail local part looks like a test address.",
        "has_name": "Whether the contact has a name (the name itself is not stored).",
        "has_phone": "Whether the contact has a phone number.",
        "owner_id": "Admin id of the contact's owner.",
        "country": "Country of the contact's location.",
        "country_code": "ISO country code of the contact's location.",
        "has_hard_bounced": "Whether e-mail to the contact hard-bounced.",
        "marked_email_as_spam": "Whether the contact marked an e-mail as spam.",
        "unsubscribed_from_emails": "Whether the contact unsubscribed from e-mails.",
        "tag_ids": "Ids of the contact's tags (JSON array).",
        "tags_truncated": "Whether Intercom listed only part of the contact's tags (has_more).",
        "company_ids": "Ids of the contact's companies (JSON array).",
        "custom_attribute_keys": "Names of the custom attributes the contact has a value for (JSON array); "
                                 "the values are not stored.",
        "deleted_at": "When the contact was found deleted in Intercom (UTC); the row is then removed.",
        **_CONTACT_TIMES,
    },
    "conversations": {
        "id": "Intercom conversation id.",
        "waiting_since": "Since when the contact has been waiting for a reply (UTC); null if not waiting.",
        "snoozed_until": "Until when the conversation is snoozed (UTC).",
        "state": "open, closed or snoozed.",
        "open": "Whether the conversation is open.",
        "read": "Whether the conversation has been read.",
        "priority": "priority or not_priority.",
        "admin_assignee_id": "Admin the conversation is assigned to.",
        "team_assignee_id": "Team the conversation is assigned to.",
        "tag_ids": "Ids of the conversation's tags (JSON array).",
        "tag_names": "Names of the conversation's tags (JSON array).",
        "contact_ids": "Ids of the contacts in the conversation (JSON array).",
        "teammate_ids": "Ids of the admins who took part (JSON array).",
        "company_id": "Company of the conversation.",
        "source_type": "Type of the first message (conversation, email, push, ...).",
        "source_delivered_as": "How the first message was delivered (customer_initiated, admin_initiated, ...).",
        "source_author_type": "Author type of the first message (user, lead, admin, bot).",
        "source_author_id": "Id of the first message's author.",
        "channel_initial": "Channel the conversation started on.",
        "channel_current": "Channel the conversation is on now.",
        "sla_name": "Name of the SLA applied, if any.",
        "sla_status": "Status of the applied SLA (hit, missed, cancelled, active).",
        "rating_score": "Conversation rating given by the contact (1-5).",
        "rating_created_at": "When the rating was given (UTC).",
        "rating_teammate_id": "Admin the rating was given to.",
        "ai_agent_participated": "Whether Intercom's AI agent took part.",
        "ai_agent_resolution_state": "AI agent's resolution state.",
        "ai_agent_last_answer_type": "Type of the AI agent's last answer.",
        "ai_agent_source_type": "What started the AI agent's involvement.",
        "ai_agent_rating": "Rating given to the AI agent (1-5).",
        "custom_attribute_keys": "Names of the custom attributes set on the conversation (JSON array); "
                                 "the values are not stored.",
        "first_contact_reply_at": "When the contact first replied (UTC).",
        "time_to_assignment": "Time from creation to the first assignment, in seconds.",
        "time_to_admin_reply": "Time from the contact's first message to the first admin reply, in seconds.",
        "time_to_first_close": "Time from creation to the first close, in seconds.",
        "time_to_last_close": "Time from creation to the last close, in seconds.",
        "median_time_to_reply": "Median time for an admin to reply, in seconds.",
        "first_admin_reply_at": "When an admin first replied (UTC).",
        "first_assignment_at": "When the conversation was first assigned (UTC).",
        "first_close_at": "When the conversation was first closed (UTC).",
        "last_close_at": "When the conversation was last closed (UTC).",
        "last_admin_reply_at": "When an admin last replied (UTC).",
        "last_contact_reply_at": "When the contact last replied (UTC).",
        "last_closed_by_id": "Admin who last closed the conversation.",
        "count_reopens": "Number of times the conversation was reopened.",
        "count_assignments": "Number of assignments.",
        "count_conversation_parts": "Number of conversation parts (messages, notes, actions); their content "
                                    "is never stored.",
        "deleted_at": "When the conversation was found deleted in Intercom (UTC); the row is then removed.",
    },
    "deleted_conversations": {
        "id": "Id of the deleted conversation.",
        "deleted_at": "When the conversation was deleted (UTC).",
        "metrics_retained": "Whether Intercom keeps the conversation's metrics after deletion.",
    },
    "activity_logs": {
        "id": "Intercom activity log event id.",
        "created_at": "When the event happened (UTC); the incremental cursor.",
        "activity_type": "Event type (e.g. admin_login_success, app_data_export).",
        "performed_by_type": "Type of the actor (admin, ...).",
        "performed_by_id": "Id of the actor.",
        "performed_by_email": "E-mail of the actor, in clear (an admin).",
        "performed_by_ip": "IP address the actor acted from.",
        "activity_description": "Intercom's description of the event; contact e-mail addresses in it are "
                                "replaced by their pseudonyms.",
        "metadata": "The event's metadata object (JSON), with contact identifiers pseudonymised.",
    },
    "ip_allowlist": {
        "id": "The workspace id: the allowlist is one record per workspace.",
        "enabled": "Whether the workspace restricts access to the listed IP ranges.",
        "ip_allowlist": "The allowed IP addresses and CIDR ranges, sorted (JSON array).",
    },
    "sync_results": {
        "run_id": "Dagster run id of the ingestion run.",
        "resource": "Intercom resource (table) collected.",
        "status": "ok, partial (some records could not be placed), skipped (missing permission or plan) or failed.",
        "reason": "Why the resource was skipped, partial or failed, in one line.",
        "rows_loaded": "Rows that landed in the table in this run (snapshots: rows of the snapshot).",
        "unchanged_rows_skipped": "Records read but not loaded because they had not changed since the cursor.",
        "rows_deleted": "Deletion markers (tombstones) applied in this run.",
        "pages": "API pages read.",
        "cursor_before": "Incremental cursor before the run (dlt's value as ISO 8601 text).",
        "cursor_after": "Incremental cursor after the run (ISO 8601 text); the cursor before if nothing loaded.",
        "window_start": "Start of the time window requested from the API (UTC).",
        "window_end": "End of the time window requested from the API (UTC).",
        "api_host": "API host the resource was read from.",
        "api_version": "Intercom API version requested.",
        "api_calls": "HTTP requests made for the resource.",
        "api_retries": "Requests retried.",
        "api_429s": "Responses 429 (rate limited).",
        "api_5xx": "Responses 5xx (server errors).",
        "api_transport_errors": "Requests that failed below HTTP (connection, timeout).",
        "lowest_ratelimit_remaining": "Lowest X-RateLimit-Remaining seen (requests left in the window).",
        "error_code": "Intercom error code of the failure, if any.",
        "http_status": "HTTP status of the failing response, if any.",
        "request_id": "Intercom request id of the failing response, if any.",
        "fields_dropped": "Fields of the API record deliberately not stored (data minimisation).",
        "reconciled": "contacts: whether the deletion sweep (all ids compared) ran.",
        "started_at": "When the region's run started (UTC).",
        "finished_at": "When the resource's result was recorded (UTC).",
        "duplicates_skipped": "Records the API returned more than once in the run, loaded once.",
        "workspace": "The workspace's configured name (workspaces file; us, eu or au for the "
                     "INTERCOM_ACCESS_TOKEN_* variables).",
    },
    "collection_proofs": {
        "run_id": "Dagster run id of the ingestion run.",
        "endpoint": "Request, e.g. GET /admins.",
        "resource": "Intercom resource the response belongs to.",
        "received_at": "When the response was received (UTC).",
        "api_base_url": "API base URL the response came from.",
        "http_status": "HTTP status of the response.",
        "request_id": "X-Request-Id of the response, else the body's request_id.",
        "body_sha256": "SHA-256 (hex) of the body as received; the body itself is never stored.",
        "body_bytes": "Size of the body as received, in bytes.",
        "workspace": "The workspace's configured name.",
    },
    "_dlt_loads": {
        "load_id": "dlt load id.",
        "schema_name": "dlt schema of the load.",
        "status": "dlt load status (0: loaded).",
        "inserted_at": "When the load was committed (UTC).",
        "schema_version_hash": "Hash of the dlt schema version used.",
    },
    "_dlt_pipeline_state": {
        "version": "Version of the pipeline state.",
        "engine_version": "dlt state engine version.",
        "pipeline_name": "dlt pipeline (intercom_<region>).",
        "state": "The pipeline state, compressed (cursors per resource).",
        "created_at": "When this state was stored (UTC).",
        "version_hash": "Hash of the state.",
    },
    "_dlt_version": {
        "version": "dlt schema version.",
        "engine_version": "dlt schema engine version.",
        "inserted_at": "When the schema version was stored (UTC).",
        "schema_name": "dlt schema name.",
        "version_hash": "Hash of the schema version.",
        "schema": "The dlt schema (JSON).",
    },
}


def describe(descriptions: Descriptions, table: str, column: str, common: Mapping[str, str] = COMMON) -> str | None:
    """A column's description: the table's own entry, else the shared one, else None."""
    own = descriptions.get(table, {})
    return own.get(column) or common.get(column)


def raw_description(table: str, column: str) -> str | None:
    return describe(RAW_DESCRIPTIONS, table, column)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def apply_column_comments(con: Any, schema: str, lookup: Any) -> int:
    """Set `COMMENT ON COLUMN` on every column of the schema's base tables that `lookup(table,
    column)` describes, where the comment differs (so a second call writes nothing).
    Returns the number of comments written."""
    current = con.execute(
        "select c.table_name, c.column_name, c.comment from duckdb_columns() c "
        "join duckdb_tables() t on t.schema_name = c.schema_name and t.table_name = c.table_name "
        "where c.schema_name = ? and c.database_name = current_database()", [schema]).fetchall()
    changes = []
    for table, column, comment in current:
        text = lookup(table, column)
        if text and text != comment:
            changes.append(f'comment on column {schema}."{table}"."{column}" is {_sql_text(text)}')
    if changes:
        con.execute("begin")
        try:
            for statement in changes:
                con.execute(statement)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return len(changes)


def apply_raw_comments(con: Any, schema: str = "intercom") -> int:
    return apply_column_comments(con, schema, raw_description)


def column_schema(columns: list[tuple[str, str]], lookup: Any, table: str) -> dg.TableSchema:
    """Dagster's table schema for (name, type) pairs, each column with its description."""
    return dg.TableSchema(columns=[
        dg.TableColumn(name, type_, description=lookup(table, name)) for name, type_ in columns])


def with_descriptions(schema: dg.TableSchema, table: str) -> dg.TableSchema:
    """A raw table's schema (as dagster-dlt derives it) with every column's description."""
    return dg.TableSchema(columns=[
        dg.TableColumn(c.name, c.type, description=raw_description(table, c.name) or c.description,
                       constraints=c.constraints, tags=c.tags)
        for c in schema.columns])
