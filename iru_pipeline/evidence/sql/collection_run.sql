-- evidence_collection_run: one row per run and workspace (docs/evidence.md#tables).
-- What was collected, when, from which API host and version, with what totals and which
-- capabilities missing; the parameters and human inputs used (with hashes); and the run's
-- manifest hash. Written last in a run: the manifest hash covers this run's export files
-- (every evidence table as CSV and JSON, these rows without the chain columns, params.json)
-- and the previous run's manifest hash, so a run edited or deleted later breaks the chain
-- (ISO 27001 5.33). manifest.py's write_run_manifest runs this file and then sets the hashes
-- on every row of the run, in one transaction.
--
-- status: complete (every resource collected) | partial | failed (nothing collected)

create table if not exists evidence.evidence_collection_run (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    workspace_name varchar,
    reported_region varchar,
    api_host varchar,
    api_version varchar,
    token_admin_id varchar,
    collection_started_at timestamptz,
    collection_finished_at timestamptz,
    period_start timestamptz,
    period_end timestamptz,
    streams_ok bigint,
    streams_not_ok bigint,
    missing_capabilities varchar[],  -- e.g. activity_logs:api_plan_restricted
    api_calls bigint,
    api_retries bigint,
    api_429s bigint,
    api_5xx bigint,
    rows_loaded bigint,
    tests_failed bigint,
    tests_not_collected bigint,
    pii_mode varchar,
    hmac_key_id varchar,             -- fingerprint of IRU_PII_KEY, never the key
    params_sha256 varchar,
    params_json json,
    inputs_json json,                -- human input files: name, file name, rows, sha256
    tool_version varchar,
    python_version varchar,
    duckdb_version varchar,
    dagster_version varchar,
    dlt_version varchar,
    collector_host varchar,
    tables_sha256 json,              -- table -> sha256 of its exported CSV for this run
    previous_manifest_sha256 varchar,
    manifest_sha256 varchar not null,
    chain_seq bigint,                -- the run's place in the hash chain (order of writing)
    files_sha256 json,               -- export file -> sha256 the chain covers (chain version 2)
    chain_version integer,           -- how manifest_sha256 is computed: 2, or NULL for version 1
    chain_columns json               -- evidence table -> its columns when the run was written
);
alter table evidence.evidence_collection_run add column if not exists chain_seq bigint;
alter table evidence.evidence_collection_run add column if not exists files_sha256 json;
alter table evidence.evidence_collection_run add column if not exists chain_version integer;
alter table evidence.evidence_collection_run add column if not exists chain_columns json;
create view if not exists evidence.latest_evidence_collection_run as
select * from evidence.evidence_collection_run
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_collection_run);

delete from evidence.evidence_collection_run where run_id = (select run_id from evidence_params);

insert into evidence.evidence_collection_run by name
with p as (select * from evidence_params),
streams as (
    select workspace_id, region,
           count(*) filter (where status = 'ok') as ok_n,
           count(*) filter (where status <> 'ok') as not_ok_n,
           list(stream || ':' || coalesce(error_code, status) order by stream) filter (where status <> 'ok') as missing,
           min(started_at) as started, max(finished_at) as finished,
           sum(api_calls) as calls, sum(api_retries) as retries, sum(api_429s) as n429, sum(api_5xx) as n5xx,
           sum(rows_loaded) as rows_loaded
    from evidence.evidence_collection_stream
    where run_id = (select run_id from p)
    group by workspace_id, region
),
tests as (
    select workspace_id, region, count(*) filter (where status = 'fail') as failed,
           count(*) filter (where status = 'not_collected') as not_collected
    from evidence.evidence_control_tests
    where run_id = (select run_id from p)
    group by workspace_id, region
)
select
    p.run_id, p.as_of, r.workspace_id, r.region,
    case when coalesce(s.ok_n, 0) = 0 then 'failed' when s.not_ok_n > 0 then 'partial' else 'complete' end as status,
    list_filter([
        case when s.not_ok_n > 0 then s.not_ok_n || ' resource(s) not collected in the latest attempt' end,
        case when t.failed > 0 then t.failed || ' control test(s) failed' end,
        case when t.not_collected > 0 then t.not_collected || ' control test(s) not collected' end
    ], lambda f: f is not null) as findings,
    coalesce(r.workspace_name, r.workspace) as workspace_name, r.reported_region, r.api_host, r.api_version, r.token_admin_id,
    s.started as collection_started_at, s.finished as collection_finished_at,
    p.period_start, p.period_end,
    coalesce(s.ok_n, 0) as streams_ok, coalesce(s.not_ok_n, 0) as streams_not_ok,
    coalesce(s.missing, []::varchar[]) as missing_capabilities,
    s.calls as api_calls, s.retries as api_retries, s.n429 as api_429s, s.n5xx as api_5xx, s.rows_loaded,
    coalesce(t.failed, 0) as tests_failed, coalesce(t.not_collected, 0) as tests_not_collected,
    p.pii_mode, p.hmac_key_id, p.params_sha256, p.params_json, p.inputs_json,
    p.tool_version, p.python_version, p.duckdb_version, p.dagster_version, p.dlt_version, p.collector_host,
    m.tables_sha256, m.previous_manifest_sha256, m.manifest_sha256, m.chain_seq, m.files_sha256, m.chain_version, m.chain_columns
from evidence_workspaces r
cross join p
cross join run_manifest m
left join streams s on s.workspace_id is not distinct from r.workspace_id and s.region = r.region
left join tests t on t.workspace_id is not distinct from r.workspace_id and t.region = r.region;
