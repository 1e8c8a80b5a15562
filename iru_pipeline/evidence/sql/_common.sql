-- Shared temp views, created on every evidence connection before a table's SQL runs.
-- Inputs: evidence_params (one row), raw_* views, resource_catalog, region_catalog (session.py).

-- The unit of evidence is the Intercom workspace (docs/evidence.md#how-a-table-is-derived).
-- Raw rows carry Intercom's `workspace_id` (several workspaces may share a region, and record ids
-- repeat across workspaces), so every view below partitions and joins by workspace; `region` is
-- an attribute shown alongside. `ws` is the key: the workspace id, or, for a configured
-- workspace whose runs never reached /me (no id known yet), `name:` and its configured name, so
-- that it still shows as not collected instead of vanishing.

-- How a collection row without a workspace id finds its workspace. A row without an id (the
-- run stopped before /me) belongs to the id its configured name was bound to by another run;
-- rows written before the workspace was recorded (no name, no id) belong to the one workspace
-- their region held.
create or replace temp view name_bindings as
select workspace, arg_max(workspace_id, finished_at) as bound_id
from raw_sync_results where workspace is not null and workspace_id is not null group by workspace;

create or replace temp view region_only_workspace as
select region, any_value(workspace_id) as only_id
from (select region, workspace_id from raw_workspaces union select region, workspace_id from raw_sync_results)
where workspace_id is not null group by region having count(distinct workspace_id) = 1;

-- The rows of table `t` (which has workspace, workspace_id and region) with their workspace
-- key (`ws`): the recorded id, else the id the name is bound to, else a region's only
-- workspace for a row written before workspaces had names, else the name itself.
create or replace temp macro with_workspace_key(t) as table
select x.*,
       coalesce(x.workspace_id, b.bound_id, case when x.workspace is null then g.only_id end,
                'name:' || coalesce(x.workspace, x.region)) as ws
from query_table(t) x
left join name_bindings b using (workspace)
left join region_only_workspace g using (region);

-- Collection attempts and proofs of collection with their workspace key.
create or replace temp view sync_runs as select * from with_workspace_key('raw_sync_results');
create or replace temp view proof_runs as select * from with_workspace_key('raw_collection_proofs');

-- The latest collection attempt of each resource in each workspace. Per resource rather than
-- per run, so a run that refreshed only some resources does not hide the others.
create or replace temp view latest_sync as
select *
from sync_runs
qualify row_number() over (
    partition by ws, resource order by finished_at desc nulls last, started_at desc nulls last, run_id desc) = 1;

-- What the successful collections of each resource cover across runs. A window that starts
-- after everything collected before it ended is a hole in the record (the rule for T10).
create or replace temp view stream_coverage as
with ok as (
    select ws, resource as stream, finished_at,
           try_cast(window_start as timestamptz) as window_start,
           try_cast(window_end as timestamptz) as window_end
    from sync_runs
    where status = 'ok'
), ordered as (
    select *,
           max(window_end) over (partition by ws, stream order by finished_at
                                 rows between unbounded preceding and 1 preceding) as covered_until
    from ok
)
select ws, stream,
       count(*) as ok_syncs,
       min(window_start) as coverage_start,
       max(window_end) as coverage_end,
       count(*) filter (where window_start > covered_until) as coverage_gaps,
       max(finished_at) as last_ok_at
from ordered
group by all;

-- Workspaces in scope: every workspace collected (or attempted) at least once, with its region,
-- its configured name and its current settings. workspace_id is null for a workspace never
-- reached (its key is then its configured name).
create or replace temp view evidence_workspaces as
with keys as (
    select ws, arg_max(region, finished_at) as region, arg_max(workspace, finished_at) as workspace
    from sync_runs group by ws
    union all
    select workspace_id, arg_max(region, _dlt_valid_from), null
    from raw_workspaces
    where workspace_id is not null and workspace_id not in (select ws from sync_runs)
    group by workspace_id
), current_workspace as (
    select * from raw_workspaces
    where _dlt_valid_to is null
    qualify row_number() over (partition by workspace_id order by _dlt_valid_from desc) = 1
)
select k.ws, case when k.ws like 'name:%' then null else k.ws end as workspace_id,
       coalesce(w.region, k.region) as region, k.workspace,
       w.name as workspace_name, w.reported_region,
       -- an unknown zone name would make timezone() fail; such a workspace is read in UTC
       coalesce((select z.name from pg_timezone_names() z where z.name = w.timezone), 'UTC') as timezone,
       w.identity_verification, w.secure, w.created_at as workspace_created_at,
       w.api_host, w.api_version, w.token_admin_id
from keys k
left join current_workspace w on w.workspace_id = k.ws;

-- Whether each resource the tests need was collected: `collected` (latest attempt ok),
-- `stale` (latest attempt failed, an earlier one succeeded: evaluated on older data), or
-- `not_collected` (skipped for a permission or plan, or never collected): the tests that
-- need it report not_collected, never pass (docs/evidence.md#how-a-table-is-derived).
create or replace temp view stream_state as
select r.ws, r.workspace_id, r.region, c.stream, l.status as latest_status, l.error_code, l.reason,
       case
           when l.status is null or l.status = 'skipped' or coalesce(v.ok_syncs, 0) = 0 then 'not_collected'
           when l.status = 'ok' then 'collected'
           else 'stale'
       end as input_state
from evidence_workspaces r
cross join resource_catalog c
left join latest_sync l on l.ws = r.ws and l.resource = c.stream
left join stream_coverage v on v.ws = r.ws and v.stream = c.stream;

-- Every admin version ever seen (scd2 history), and each admin's latest known version.
-- Admin ids are Intercom's ids within one workspace.
create or replace temp view admin_latest as
select workspace_id as ws, region, id as admin_id, lower(email) as email, name, role_name,
       _dlt_valid_to is null as is_current
from raw_admins
qualify row_number() over (partition by workspace_id, id order by _dlt_valid_from desc nulls last) = 1;

-- Activity-log events with the workspace's local time (for business hours).
create or replace temp view activity as
select l.*, l.workspace_id as ws, lower(l.performed_by_email) as actor_email,
       timezone(coalesce(r.timezone, 'UTC'), l.created_at) as local_at
from raw_activity_logs l
left join evidence_workspaces r on r.ws = l.workspace_id;

-- The latest review decision per workspace and finding (evidence_reviews.csv): a later review
-- replaces an earlier one. Event ids are Intercom's ids within one workspace: a review naming a
-- workspace (workspace_id and/or region) applies there only, one naming none applies in each.
create or replace temp view latest_review as
select g.ws, g.workspace_id, g.region, r.finding_id, r.decision, r.reviewed_by, r.reviewed_at, r.note, r.source_line
from evidence_reviews r
join evidence_workspaces g on (r.workspace_id is null or r.workspace_id = g.workspace_id)
    and (r.region is null or r.region = g.region)
qualify row_number() over (partition by g.ws, r.finding_id order by r.reviewed_at desc, r.source_line desc) = 1;

-- The activity-log events actually held for the period, per workspace (T10): every stretch
-- longer than activity_log_max_gap_hours without an event, counting the stretches from the
-- period start to the first event and from the last event to the run. Windows that were
-- requested but hold nothing show up here as gaps: a request is not evidence.
create or replace temp view activity_log_gaps as
with p as (select * from evidence_params),
points as (
    select l.workspace_id as ws, l.created_at as event_at
    from raw_activity_logs l cross join p
    where l.created_at between p.period_start and p.period_end
    union all
    select r.ws, unnest([p.period_start, p.period_end]) from evidence_workspaces r cross join p
),
ordered as (
    select ws, event_at, lag(event_at) over (partition by ws order by event_at) as previous_at from points
)
select o.ws, o.previous_at as gap_start, o.event_at as gap_end
from ordered o cross join p
where o.previous_at is not null and o.event_at - o.previous_at > to_hours(p.activity_log_max_gap_hours);

create or replace temp view activity_log_held as
with p as (select * from evidence_params)
select l.workspace_id as ws, count(*) as events, min(l.created_at) as first_event_at, max(l.created_at) as last_event_at
from raw_activity_logs l cross join p
where l.created_at between p.period_start and p.period_end
group by l.workspace_id;

-- HR roster keyed by lower-case e-mail.
create or replace temp view hr as
select lower(email) as email, person_id, status, termination_at from hr_roster;
