-- evidence_findings: each finding tracked across runs (docs/evidence.md#findings-across-runs).
-- One row per finding and workspace, derived from the rows every earlier run stored, not
-- recomputed from the raw data. A finding is:
--   T11 high_risk_activity  a row of evidence_high_risk_activity (its finding_id is kept)
--   T01 failing_admin       an admin failing identification (terminated in HR, or not in it)
--   T03 failing_admin       an admin failing staleness (no approved 'inactive' exception)
--   T06 access_change       an access change that fails or needs review (evidence_access_change_events)
-- finding_id: the high-risk finding's own id; else the first 16 hex of
-- sha256(test_id|region|subject), subject being the admin id or the event id. Both are stable
-- across runs, so a review decision (evidence_reviews.csv, naming the finding_id, or the
-- event id for an access change) keeps applying. Ids are Intercom's within one workspace, so a
-- finding is (workspace_id, finding_id): two workspaces of one region may hold the same id.
--
-- Only this run and the runs chained before it (prior_runs) with an as_of up to this run's
-- count, as in the control-test history: deriving a run again gives the same rows.
--
-- first_detected_at / last_seen_at  as_of of the first and last run whose rows hold the finding
-- resolved_at, resolution:
--   reviewed            a review decision is recorded (resolved_at = reviewed_at, never before
--                       first_detected_at), unless the finding was gone before the review
--   gone_from_the_data  the first later run that collected the finding's source resource in its
--                       workspace no longer held it (resolved_at = that run's as_of)
-- status: pass          resolved
--         fail          open, and this run's source row fails
--         review        open, a person must look
--         not_collected open: gone from this run's rows, but the source resource was not collected
--                       since it was last seen, so nobody can say it is resolved
-- Findings resolved before the period start are left out, so the table stays the period's size.

create table if not exists evidence.evidence_findings (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    finding_id varchar not null,
    test_id varchar not null,
    finding_kind varchar not null,   -- high_risk_activity | failing_admin | access_change
    subject varchar,                 -- finding id (high risk), admin id, or event id
    subject_label varchar,           -- rule and actor, admin e-mail, or change and actor
    severity varchar,                -- medium | high | critical
    first_event_at timestamptz,      -- the first event behind it (null for an admin)
    first_detected_at timestamptz not null,
    last_seen_at timestamptz not null,
    runs_seen bigint,
    is_open boolean not null,
    resolved_at timestamptz,
    resolution varchar,              -- reviewed | gone_from_the_data
    decision varchar,
    reviewed_by varchar,
    reviewed_at timestamptz,
    time_to_resolve_hours double     -- resolved_at - first_detected_at
);
create view if not exists evidence.latest_evidence_findings as
select * from evidence.evidence_findings
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_findings);

delete from evidence.evidence_findings where run_id = (select run_id from evidence_params);

insert into evidence.evidence_findings by name
with p as (select * from evidence_params),
known as (
    select run_id from prior_runs
    union
    select run_id from p
),
sightings as (
    select h.region, h.workspace_id, h.run_id, h.as_of, 'T11' as test_id, 'high_risk_activity' as finding_kind,
           'activity_logs' as stream, h.finding_id as subject,
           h.rule_name || ': ' || coalesce(h.actor_email, h.actor_admin_id, 'unknown actor') as subject_label,
           h.severity, h.first_event_at, h.status as source_status
    from evidence.evidence_high_risk_activity h cross join p
    where h.run_id in (select run_id from known) and h.as_of <= p.as_of
    union all
    select a.region, a.workspace_id, a.run_id, a.as_of, unnest(list_filter([
               case when a.identity_status in ('terminated', 'unmatched') then 'T01' end,
               case when a.staleness = 'stale' and not list_contains(coalesce(a.exception_kinds, []), 'inactive')
                    then 'T03' end], lambda t: t is not null)) as test_id,
           'failing_admin', 'admins', a.admin_id, coalesce(a.admin_email, a.admin_id), 'high', null::timestamptz,
           a.status
    from evidence.evidence_admin_access_review a cross join p
    where a.run_id in (select run_id from known) and a.as_of <= p.as_of and a.status = 'fail'
    union all
    select c.region, c.workspace_id, c.run_id, c.as_of, 'T06', 'access_change', 'activity_logs', c.event_id,
           c.activity_type || ' by ' || coalesce(c.actor_email, c.actor_admin_id, 'unknown actor'),
           case when c.status = 'fail' then 'high' else 'medium' end, c.created_at, c.status
    from evidence.evidence_access_change_events c cross join p
    where c.run_id in (select run_id from known) and c.as_of <= p.as_of
      and (c.status in ('fail', 'review') or c.review_decision is not null)
),
identified as (
    select *,
           case when finding_kind = 'high_risk_activity' then subject
                else left(sha256(test_id || '|' || region || '|' || subject), 16) end as finding_id
    from sightings
),
lifecycle as (
    select i.workspace_id, i.region, i.finding_id, any_value(i.test_id) as test_id,
           any_value(i.finding_kind) as finding_kind, any_value(i.stream) as stream,
           any_value(i.subject) as subject, arg_max(i.subject_label, i.as_of) as subject_label,
           arg_max(i.severity, i.as_of) as severity, min(i.first_event_at) as first_event_at,
           min(i.as_of) as first_detected_at, max(i.as_of) as last_seen_at,
           count(distinct i.run_id) as runs_seen,
           bool_or(i.run_id = p.run_id) as present_now,
           arg_max(i.source_status, i.as_of) as source_status
    from identified i cross join p
    group by i.workspace_id, i.region, i.finding_id
),
-- runs that collected the source resource in the workspace: only these can show a finding gone
collected as (
    select s.workspace_id, s.region, s.stream, s.as_of
    from evidence.evidence_collection_stream s cross join p
    where s.run_id in (select run_id from known) and s.as_of <= p.as_of and s.status not in ('skipped', 'not_run')
),
gone as (
    select l.workspace_id, l.region, l.finding_id, min(c.as_of) as gone_at
    from lifecycle l
    join collected c on c.workspace_id is not distinct from l.workspace_id and c.region = l.region and c.stream = l.stream and c.as_of > l.last_seen_at
    where not l.present_now
    group by l.workspace_id, l.region, l.finding_id
),
reviewed as (
    select l.workspace_id, l.region, l.finding_id, r.decision, r.reviewed_by, r.reviewed_at
    from lifecycle l
    join latest_review r on r.workspace_id is not distinct from l.workspace_id and r.region = l.region
        and (r.finding_id = l.finding_id or (l.finding_kind = 'access_change' and r.finding_id = l.subject))
    qualify row_number() over (partition by l.workspace_id, l.region, l.finding_id
                               order by r.reviewed_at desc, r.source_line desc) = 1
),
resolved as (
    select l.*, g.gone_at, r.decision, r.reviewed_by, r.reviewed_at,
           case when r.decision is not null and (g.gone_at is null or r.reviewed_at <= g.gone_at) then 'reviewed'
                when g.gone_at is not null then 'gone_from_the_data' end as resolution
    from lifecycle l
    left join gone g on g.workspace_id is not distinct from l.workspace_id and g.region = l.region and g.finding_id = l.finding_id
    left join reviewed r on r.workspace_id is not distinct from l.workspace_id and r.region = l.region and r.finding_id = l.finding_id
),
timed as (
    select *,
           case resolution when 'reviewed' then greatest(reviewed_at, first_detected_at)
                           when 'gone_from_the_data' then gone_at end as resolved_at
    from resolved
)
select
    p.run_id, p.as_of, t.workspace_id, t.region,
    case when t.resolution is not null then 'pass'
         when not t.present_now then 'not_collected'
         when t.source_status = 'fail' then 'fail'
         else 'review' end as status,
    list_filter([
        case when t.resolution = 'reviewed' then 'reviewed: ' || t.decision || ' by ' || t.reviewed_by end,
        case when t.resolution = 'gone_from_the_data' then 'gone from the data on ' || strftime(t.resolved_at, '%Y-%m-%d') end,
        case when t.resolution is null and not t.present_now
             then 'not re-evaluated since ' || strftime(t.last_seen_at, '%Y-%m-%d') || ': ' || t.stream || ' not collected' end,
        case when t.resolution is null and t.present_now then 'open since ' || strftime(t.first_detected_at, '%Y-%m-%d') end
    ], lambda f: f is not null) as findings,
    t.finding_id, t.test_id, t.finding_kind, t.subject, t.subject_label, t.severity, t.first_event_at,
    t.first_detected_at, t.last_seen_at, t.runs_seen, t.resolution is null as is_open, t.resolved_at, t.resolution,
    t.decision, t.reviewed_by, t.reviewed_at,
    round(epoch(t.resolved_at - t.first_detected_at) / 3600, 3) as time_to_resolve_hours
from timed t
cross join p
join evidence_workspaces w on w.workspace_id is not distinct from t.workspace_id and w.region = t.region
where t.resolution is null or t.resolved_at >= p.period_start;
