-- evidence_offboarding_check: one row per person terminated in the HR roster and workspace
-- (docs/evidence.md#tables). Scope: terminations inside the period, and any terminated person
-- who still holds an account whenever they left. Every workspace is checked, so "no account
-- here" is evidence too. Empty when no HR roster is configured (T02 is then not_collected).
--
-- Removal time: an admin_deletion / admin_deprovisioned / seat_revoke event naming the admin
-- (exact), else the snapshot that first missed the admin (scd2 `_dlt_valid_to`: an upper bound,
-- with `last_present_at` the last successful admin collection before it; docs/evidence.md#caveats-the-evidence-states).
--
-- status: fail            activity after termination, access held past the SLA, or removed late
--         pending         access still held, within the SLA
--         pass            removed within the SLA
--         not_applicable  no account in this workspace (kept as evidence, outside T02's population)

create table if not exists evidence.evidence_offboarding_check (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    hr_person_id varchar,
    hr_email varchar not null,
    termination_at timestamptz,
    sla_hours integer,
    sla_due_at timestamptz,
    account_found boolean,
    admin_ids varchar[],
    account_active_now boolean,
    last_present_at timestamptz,
    removal_detected_at timestamptz,
    removal_source varchar,          -- activity_log | snapshot | null while active
    removal_lag_hours double,
    activity_after_termination bigint,
    last_activity_after_termination timestamptz,
    activity_types_after_termination varchar[]
);
create view if not exists evidence.latest_evidence_offboarding_check as
select * from evidence.evidence_offboarding_check
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_offboarding_check);

delete from evidence.evidence_offboarding_check where run_id = (select run_id from evidence_params);

insert into evidence.evidence_offboarding_check by name
with p as (select * from evidence_params),
versions as (
    select workspace_id as ws, id as admin_id, lower(email) as email, _dlt_valid_from, _dlt_valid_to from raw_admins
),
accounts as (
    select ws, email,
           list(distinct admin_id order by admin_id) as admin_ids,
           bool_or(_dlt_valid_to is null) as active_now,
           case when bool_or(_dlt_valid_to is null) then null else max(_dlt_valid_to) end as snapshot_removed_at
    from versions
    group by all
),
terminated as (
    select h.*
    from hr h cross join p
    where h.status = 'terminated'
      and (h.termination_at >= p.period_start - to_hours(p.offboarding_sla_hours)
           or exists (select 1 from accounts a where a.email = h.email and a.active_now))
),
scope as (
    select t.*, r.ws, r.region, r.workspace_id, a.admin_ids, a.active_now, a.snapshot_removed_at
    from terminated t
    cross join evidence_workspaces r
    left join accounts a on a.ws = r.ws and a.email = t.email
),
removal_events as (
    select s.ws, s.email, min(l.created_at) as removed_at
    from scope s
    join activity l on l.ws = s.ws
        and l.activity_type in ('admin_deletion', 'admin_deprovisioned', 'seat_revoke')
        and l.created_at >= s.termination_at - interval 30 day
        and (contains(lower(coalesce(l.activity_description, '') || ' ' || coalesce(l.metadata::varchar, '')), s.email)
             or list_has_any(s.admin_ids, regexp_extract_all(coalesce(l.metadata::varchar, '') || ' ' || coalesce(l.activity_description, ''), '\d+')))
        -- the admin's own actions (metadata.update_by is the actor's id) are not their removal
        and not coalesce(list_contains(s.admin_ids, l.performed_by_id), false)
    group by all
),
present as (
    select s.ws, s.email, max(r.finished_at) as last_present_at
    from scope s
    join sync_runs r on r.ws = s.ws and r.resource = 'admins' and r.status = 'ok'
        and (s.snapshot_removed_at is null or r.finished_at < s.snapshot_removed_at)
    where s.admin_ids is not null
    group by all
),
after as (
    select s.ws, s.email, count(*) as n, max(l.created_at) as last_at,
           list(distinct l.activity_type order by l.activity_type) as types
    from scope s
    join activity l on l.ws = s.ws and l.created_at > s.termination_at
        and (l.actor_email = s.email or list_contains(s.admin_ids, l.performed_by_id))
    group by all
),
joined as (
    select s.*, p.run_id, p.as_of, p.offboarding_sla_hours,
           s.termination_at + to_hours(p.offboarding_sla_hours) as due_at,
           pr.last_present_at,
           case when not s.active_now then coalesce(e.removed_at, s.snapshot_removed_at) end as removed_at,
           case when not s.active_now then case when e.removed_at is not null then 'activity_log' else 'snapshot' end end
               as removed_by,
           coalesce(af.n, 0) as after_n, af.last_at as after_last, af.types as after_types
    from scope s
    cross join p
    left join removal_events e on e.ws = s.ws and e.email = s.email
    left join present pr on pr.ws = s.ws and pr.email = s.email
    left join after af on af.ws = s.ws and af.email = s.email
),
measured as (
    select *, round(date_diff('second', termination_at, removed_at) / 3600.0, 2) as lag_hours from joined
)
select
    run_id, as_of, workspace_id, region,
    case
        when after_n > 0 or (active_now and as_of > due_at) or lag_hours > offboarding_sla_hours then 'fail'
        when active_now then 'pending'
        when admin_ids is null then 'not_applicable'
        else 'pass'
    end as status,
    list_filter([
        case when after_n > 0 then after_n || ' activity-log event(s) after termination' end,
        case when active_now and as_of > due_at then 'still has access ' || date_diff('day', termination_at, as_of) || ' days after termination' end,
        case when active_now and as_of <= due_at then 'still has access, within the SLA' end,
        case when lag_hours > offboarding_sla_hours then 'removed ' || lag_hours || ' hours after termination' end,
        case when admin_ids is null then 'no account in this workspace' end
    ], lambda f: f is not null) as findings,
    person_id as hr_person_id, email as hr_email, termination_at,
    offboarding_sla_hours as sla_hours, due_at as sla_due_at,
    admin_ids is not null as account_found,
    coalesce(admin_ids, []::varchar[]) as admin_ids,
    coalesce(active_now, false) as account_active_now,
    last_present_at, removed_at as removal_detected_at, removed_by as removal_source, lag_hours as removal_lag_hours,
    after_n as activity_after_termination, after_last as last_activity_after_termination,
    coalesce(after_types, []::varchar[]) as activity_types_after_termination
from measured;
