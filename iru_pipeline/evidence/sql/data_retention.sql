-- evidence_data_retention: one row per workspace and record type (docs/evidence.md#tables).
-- Storage limitation and disposal: how many conversations and contacts are older than their
-- retention period, measured from their last sign of life, and what deletion happened.
-- Intercom removes inactive visitors itself; users and leads are the customer's job.
--
-- conversation   greatest(updated_at, last_close_at, created_at)   conversation_retention_days
-- contact_user   greatest(last_seen_at, last_replied_at,           contact_retention_days
--                signed_up_at, created_at)
-- contact_lead   (same)                                             lead_retention_days
--
-- status: fail if over_retention_pct > retention_tolerance_pct, else pass.

create table if not exists evidence.evidence_data_retention (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    object_type varchar not null,
    reference_rule varchar,
    retention_days integer,
    population bigint,
    over_retention bigint,
    over_retention_pct double,
    oldest_reference_at timestamptz,
    median_age_days double,
    oldest_over_retention_ids varchar[],  -- conversations only (Intercom ids, up to 20)
    deletion_events_in_period bigint,     -- activity log: deletions of whole records (app_data_deletion, bulk_delete)
    deletion_schedule_state varchar,      -- latest conversation_deletion_schedule_* event
    deleted_in_period bigint              -- conversations: GET /conversations/deleted; contacts: purged by the sweep
);
create view if not exists evidence.latest_evidence_data_retention as
select * from evidence.evidence_data_retention
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_data_retention);

delete from evidence.evidence_data_retention where run_id = (select run_id from evidence_params);

insert into evidence.evidence_data_retention by name
with p as (select * from evidence_params),
records as (
    select workspace_id as ws, region, 'conversation' as object_type, p.conversation_retention_days as retention_days,
           greatest(updated_at, last_close_at, created_at) as reference_at, id
    from raw_conversations cross join p
    union all
    select workspace_id, region, 'contact_' || coalesce(lower(role), 'unknown'),
           case when lower(role) = 'lead' then p.lead_retention_days else p.contact_retention_days end,
           greatest(last_seen_at, last_replied_at, signed_up_at, created_at), null
    from raw_contacts cross join p
),
measured as (
    select ws, any_value(region) as region, object_type, any_value(retention_days) as retention_days,
           count(*) as population,
           count(*) filter (where reference_at < p.as_of - to_days(retention_days)) as over_retention,
           min(reference_at) as oldest_reference_at,
           round(quantile_cont(date_diff('hour', reference_at, p.as_of) / 24.0, 0.5), 1) as median_age_days,
           list(id order by reference_at, id) filter (where id is not null and reference_at < p.as_of - to_days(retention_days))
               as over_ids
    from records cross join p
    group by ws, object_type
),
deletions as (
    select ws,
           -- whole records only: a deleted message or conversation part leaves the record in place
           count(*) filter (where created_at between p.period_start and p.period_end and activity_type in (
               'app_data_deletion', 'bulk_delete')) as events,
           arg_max(activity_type, created_at) filter (where activity_type like 'conversation_deletion_schedule_%')
               as schedule_state
    from activity cross join p
    group by ws
),
deleted_conversations as (
    select workspace_id as ws, count(*) as n
    from raw_deleted_conversations cross join p
    where deleted_at between p.period_start and p.period_end
    group by workspace_id
),
purged_contacts as (
    select ws, sum(rows_deleted) as n
    from sync_runs cross join p
    where resource = 'contacts' and status = 'ok' and finished_at between p.period_start and p.period_end
    group by ws
),
judged as (
    select m.*, p.run_id, p.as_of, p.retention_tolerance_pct, w.workspace_id, w.region as ws_region,
           round(100.0 * m.over_retention / nullif(m.population, 0), 3) as pct,
           coalesce(d.events, 0) as deletion_events,
           case when m.object_type = 'conversation' then d.schedule_state end as schedule_state,
           case when m.object_type = 'conversation' then coalesce(dc.n, 0) else coalesce(pc.n, 0) end as deleted_n
    from measured m
    cross join p
    left join evidence_workspaces w on w.ws = m.ws
    left join deletions d on d.ws = m.ws
    left join deleted_conversations dc on dc.ws = m.ws
    left join purged_contacts pc on pc.ws = m.ws
)
select
    run_id, as_of, coalesce(workspace_id, ws) as workspace_id, coalesce(ws_region, region) as region,
    case when coalesce(pct, 0) > retention_tolerance_pct then 'fail' else 'pass' end as status,
    list_filter([
        case when over_retention > 0 then over_retention || ' of ' || population || ' past ' || retention_days || ' days' end,
        case when object_type = 'conversation' and schedule_state is null and deletion_events = 0 and deleted_n = 0
             then 'no deletion schedule or deletion recorded in the period' end
    ], lambda f: f is not null) as findings,
    object_type,
    case when object_type = 'conversation' then 'greatest(updated_at, last_close_at, created_at)'
         else 'greatest(last_seen_at, last_replied_at, signed_up_at, created_at)' end as reference_rule,
    retention_days, population, over_retention, coalesce(pct, 0.0) as over_retention_pct,
    oldest_reference_at, median_age_days,
    case when object_type = 'conversation' then coalesce(over_ids[1:20], []::varchar[]) end as oldest_over_retention_ids,
    deletion_events as deletion_events_in_period, schedule_state as deletion_schedule_state, deleted_n as deleted_in_period
from judged;
