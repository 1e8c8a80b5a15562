-- evidence_collection_stream: one row per workspace and Intercom resource (docs/evidence.md#tables).
-- What the latest collection attempt of each resource did (from intercom.sync_results), and
-- what the successful attempts cover across runs. `status` is the collection status:
-- ok | skipped (permission or plan: the dependent tests become not_collected) | failed | not_run.
-- `fields_dropped` is the minimisation evidence: fields Intercom sends that are never stored.

create table if not exists evidence.evidence_collection_stream (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    stream varchar not null,
    endpoint varchar,
    scope_required varchar,
    mode varchar,
    ingestion_run_id varchar,
    started_at timestamptz,
    finished_at timestamptz,
    window_start timestamptz,
    window_end timestamptz,
    cursor_before varchar,
    cursor_after varchar,
    ok_syncs bigint,
    coverage_start timestamptz,
    coverage_end timestamptz,
    coverage_gaps bigint,
    pages bigint,
    api_calls bigint,
    api_retries bigint,
    api_429s bigint,
    api_5xx bigint,
    lowest_ratelimit_remaining bigint,
    rows_loaded bigint,
    unchanged_rows_skipped bigint,
    rows_deleted bigint,
    stored_rows bigint,
    fields_dropped varchar[],
    api_host varchar,
    api_version varchar,
    error_code varchar,
    http_status integer,
    request_id varchar,
    reason varchar
);
create view if not exists evidence.latest_evidence_collection_stream as
select * from evidence.evidence_collection_stream
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_collection_stream);

delete from evidence.evidence_collection_stream where run_id = (select run_id from evidence_params);

insert into evidence.evidence_collection_stream by name
with p as (select * from evidence_params),
stored as (
    -- rows held now per workspace and table (snapshots: current versions only)
    select workspace_id as ws, 'workspaces' as stream, count(*) as n from raw_workspaces where _dlt_valid_to is null group by all
    union all select workspace_id as ws, 'admins', count(*) from raw_admins where _dlt_valid_to is null group by all
    union all select workspace_id as ws, 'teams', count(*) from raw_teams where _dlt_valid_to is null group by all
    union all select workspace_id as ws, 'team_memberships', count(*) from raw_team_memberships where _dlt_valid_to is null group by all
    union all select workspace_id as ws, 'tags', count(*) from raw_tags where _dlt_valid_to is null group by all
    union all select workspace_id as ws, 'data_attributes', count(*) from raw_data_attributes where _dlt_valid_to is null group by all
    union all select workspace_id as ws, 'contacts', count(*) from raw_contacts group by all
    union all select workspace_id as ws, 'conversations', count(*) from raw_conversations group by all
    union all select workspace_id as ws, 'deleted_conversations', count(*) from raw_deleted_conversations group by all
    union all select workspace_id as ws, 'activity_logs', count(*) from raw_activity_logs group by all
)
select
    p.run_id, p.as_of, r.workspace_id, r.region,
    coalesce(l.status, 'not_run') as status,
    list_filter([
        case when l.status is null then 'never attempted in this workspace' end,
        case when l.status = 'skipped' then 'not collected: ' || coalesce(l.error_code, 'skipped') || ' (needs the "' || c.scope_required || '" permission or plan)' end,
        case when l.status = 'failed' then 'latest attempt failed: ' || coalesce(l.error_code, 'error') end,
        case when v.coverage_gaps > 0 then 'collected windows leave ' || v.coverage_gaps || ' gap(s)' end,
        case when l.api_429s > 0 then l.api_429s || ' rate-limited responses (429), retried' end
    ], lambda f: f is not null) as findings,
    c.stream, c.endpoint, c.scope_required, c.mode,
    l.run_id as ingestion_run_id, l.started_at, l.finished_at,
    try_cast(l.window_start as timestamptz) as window_start,
    try_cast(l.window_end as timestamptz) as window_end,
    l.cursor_before, l.cursor_after,
    coalesce(v.ok_syncs, 0) as ok_syncs, v.coverage_start, v.coverage_end, coalesce(v.coverage_gaps, 0) as coverage_gaps,
    l.pages, l.api_calls, l.api_retries, l.api_429s, l.api_5xx, l.lowest_ratelimit_remaining,
    l.rows_loaded, l.unchanged_rows_skipped, l.rows_deleted,
    coalesce(s.n, 0) as stored_rows,
    coalesce(l.fields_dropped, []::varchar[]) as fields_dropped,
    coalesce(l.api_host, r.api_host) as api_host, coalesce(l.api_version, r.api_version) as api_version,
    l.error_code, l.http_status, l.request_id, l.reason
from evidence_workspaces r
cross join resource_catalog c
cross join p
left join latest_sync l on l.ws = r.ws and l.resource = c.stream
left join stream_coverage v on v.ws = r.ws and v.stream = c.stream
left join stored s on s.ws = r.ws and s.stream = c.stream;
