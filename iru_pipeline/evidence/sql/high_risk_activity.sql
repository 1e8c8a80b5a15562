-- evidence_high_risk_activity: one row per finding in the period (docs/evidence.md#tables).
--
-- R1 burst of admin_login_failure: >= login_failure_burst by one actor from one IP within an
--    hour (one finding per burst)                                                     high
-- R2 admin_unauthorized_sign_in_method                                                high
-- R3 data export (app_data_export, bulk_export, conversation_pdf_export, macro_usage_export)
--                                       medium; high outside business hours (workspace time zone)
-- R4 destructive (app_data_deletion, bulk_delete, message_deletion, conversation_part_deletion,
--    workspace_deletion_request)                                                       high
-- R5 security configuration change                                                     medium
-- R6 secrets and integrations                                                          medium
-- R7 events by an actor terminated in HR at the time, or never seen as an admin (one finding
--    per actor)                                                                        critical
-- R8 admin_impersonation_start without consent                                         medium
--    Intercom records consent in either of two shapes: on the start event itself (metadata
--    consent_id, with expired_at when the consent ends), or as a separate
--    admin_impersonation_consent_approved event (valid until its metadata expired_at, else for
--    7 days). Either covers the start unless an admin_impersonation_consent_revoked event for
--    that consent (or naming none) came before the start.
--
-- finding_id = first 16 hex of sha256(rule|region|actor|first event id): stable across runs,
-- so a review decision (evidence_reviews.csv) keeps applying. A finding is due for review
-- review_due_days after the first run that detected it (earlier runs' rows are the history).
-- status: pass    a decision is recorded
--         fail    high or critical, unreviewed past its due date
--         review  open

create table if not exists evidence.evidence_high_risk_activity (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    finding_id varchar not null,
    rule_id varchar not null,
    rule_name varchar,
    severity varchar,                -- medium | high | critical
    first_event_at timestamptz,
    last_event_at timestamptz,
    first_event_local_time varchar,  -- workspace time zone, for the business-hours judgement
    event_count bigint,
    event_ids varchar[],
    activity_types varchar[],
    actor_admin_id varchar,
    actor_email varchar,
    actor_ip varchar,
    actor_hr_status varchar,
    outside_business_hours boolean,
    detected_at timestamptz,
    review_due_at timestamptz,
    decision varchar,
    reviewed_by varchar,
    reviewed_at timestamptz,
    note varchar
);
create view if not exists evidence.latest_evidence_high_risk_activity as
select * from evidence.evidence_high_risk_activity
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_high_risk_activity);

delete from evidence.evidence_high_risk_activity where run_id = (select run_id from evidence_params);

insert into evidence.evidence_high_risk_activity by name
with p as (select * from evidence_params),
ev as (
    select l.*,
           not (list_contains(p.business_days, isodow(l.local_at))
                and hour(l.local_at) >= p.business_hour_start and hour(l.local_at) < p.business_hour_end) as outside_hours
    from activity l cross join p
    where l.created_at between p.period_start and p.period_end
),
consent_events as (
    select ws, id, created_at, activity_type, metadata ->> 'consent_id' as consent_id,
           try_cast(metadata ->> 'expired_at' as timestamptz) as expired_at
    from activity
    where activity_type in ('admin_impersonation_start', 'admin_impersonation_consent_approved',
                            'admin_impersonation_consent_revoked')
),
consented_starts as (
    select s.ws, s.id
    from consent_events s
    where s.activity_type = 'admin_impersonation_start' and (
        (s.consent_id is not null and coalesce(s.expired_at >= s.created_at, true)
         and not exists (
             select 1 from consent_events r
             where r.ws = s.ws and r.activity_type = 'admin_impersonation_consent_revoked'
               and r.consent_id = s.consent_id and r.created_at <= s.created_at))
        or exists (
             select 1 from consent_events a
             where a.ws = s.ws and a.activity_type = 'admin_impersonation_consent_approved'
               and a.created_at <= s.created_at
               and s.created_at <= coalesce(a.expired_at, a.created_at + interval 7 day)
               and not exists (
                   select 1 from consent_events r
                   where r.ws = s.ws and r.activity_type = 'admin_impersonation_consent_revoked'
                     and r.created_at between a.created_at and s.created_at
                     and (r.consent_id is null or a.consent_id is null or r.consent_id = a.consent_id))))
),
failures as (
    select *,
           count(*) over (partition by ws, performed_by_id, performed_by_ip order by created_at
                          range between current row and interval 1 hour following) as in_next_hour,
           case when created_at - lag(created_at) over (partition by ws, performed_by_id, performed_by_ip
                                                        order by created_at, id) <= interval 1 hour
                then 0 else 1 end as starts_group
    from ev
    where activity_type = 'admin_login_failure'
),
failure_groups as (
    select *, sum(starts_group) over (partition by ws, performed_by_id, performed_by_ip
                                      order by created_at, id rows unbounded preceding) as grp
    from failures
),
r1 as (
    select ws, 'R1' as rule_id, 'login failure burst' as rule_name, 'high' as severity,
           performed_by_id as actor_id, performed_by_ip as ip,
           list(id order by created_at, id) as ids, list(created_at order by created_at, id) as times,
           ['admin_login_failure'] as types
    from failure_groups cross join p
    group by ws, performed_by_id, performed_by_ip, grp, p.login_failure_burst
    having max(in_next_hour) >= p.login_failure_burst
),
single_events as (
    select ws,
        case
            when activity_type = 'admin_unauthorized_sign_in_method' then 'R2'
            when activity_type in ('app_data_export', 'bulk_export', 'conversation_pdf_export', 'macro_usage_export') then 'R3'
            when activity_type in ('app_data_deletion', 'bulk_delete', 'message_deletion', 'conversation_part_deletion',
                                   'workspace_deletion_request') then 'R4'
            when activity_type in ('security_settings_change', 'app_authentication_method_change',
                                   'app_identity_verification_change', 'trusted_domains_setting_change',
                                   'malicious_domains_setting_change')
                 or activity_type like 'content_redaction_rule_%'
                 or activity_type like 'conversation_deletion_schedule_%' then 'R5'
            when activity_type like 'messenger_api_secret_%'
                 or activity_type in ('custom_authentication_token_creation', 'app_package_token_regeneration',
                                      'app_webhook_creation') then 'R6'
            when activity_type = 'admin_impersonation_start' and c.id is null then 'R8'
        end as rule_id,
        performed_by_id as actor_id, performed_by_ip as ip, id, created_at, outside_hours, activity_type
    from ev
    left join consented_starts c using (ws, id)
),
per_event as (
    select ws, rule_id,
           case rule_id when 'R2' then 'unauthorised sign-in method' when 'R3' then 'data export'
                        when 'R4' then 'destructive action' when 'R5' then 'security configuration change'
                        when 'R6' then 'secret or integration change' when 'R8' then 'impersonation without consent' end
               as rule_name,
           case when rule_id in ('R2', 'R4') or (rule_id = 'R3' and outside_hours) then 'high' else 'medium' end as severity,
           actor_id, ip, [id] as ids, [created_at] as times, [activity_type] as types
    from single_events
    where rule_id is not null
),
r7 as (
    select e.ws, 'R7' as rule_id,
           case when bool_or(h.termination_at <= e.created_at) then 'activity by a terminated person'
                else 'activity by an unknown actor' end as rule_name,
           'critical' as severity, e.performed_by_id as actor_id, arg_min(e.performed_by_ip, e.created_at) as ip,
           list(e.id order by e.created_at, e.id) as ids, list(e.created_at order by e.created_at, e.id) as times,
           list(distinct e.activity_type order by e.activity_type) as types
    from ev e
    left join hr h on h.email = e.actor_email
    left join admin_latest a on a.ws = e.ws and a.admin_id = e.performed_by_id
    where e.performed_by_id is not null and coalesce(e.performed_by_type, 'admin') = 'admin'
      and (h.termination_at <= e.created_at or a.admin_id is null)
    group by e.ws, e.performed_by_id
),
findings as (
    select * from r1
    union all by name select * from per_event
    union all by name select * from r7
),
described as (
    select f.*, e.region, e.actor_email, e.performed_by_email, e.outside_hours, e.local_at,
           left(sha256(f.rule_id || '|' || e.region || '|' || coalesce(f.actor_id, '') || '|' || f.ids[1]), 16) as fid
    from findings f
    join ev e on e.ws = f.ws and e.id = f.ids[1]
),
history as (
    -- finding ids are unique within a workspace (the id hashes the region, not the workspace)
    select workspace_id, finding_id, min(as_of) as first_detected_at
    from evidence.evidence_high_risk_activity
    group by all
)
select
    p.run_id, p.as_of, w.workspace_id, coalesce(w.region, d.region) as region,
    case
        when r.decision is not null then 'pass'
        when d.severity in ('high', 'critical') and p.as_of > coalesce(hs.first_detected_at, p.as_of) + to_days(p.review_due_days)
            then 'fail'
        else 'review'
    end as status,
    list_filter([
        d.rule_name || ' (' || d.severity || ')',
        case when d.rule_id = 'R3' and d.outside_hours then 'outside business hours' end,
        case when r.decision is not null then 'reviewed: ' || r.decision end
    ], lambda f: f is not null) as findings,
    d.fid as finding_id, d.rule_id, d.rule_name, d.severity,
    d.times[1] as first_event_at, d.times[-1] as last_event_at,
    strftime(d.local_at, '%Y-%m-%d %H:%M (%a)') as first_event_local_time,
    len(d.ids) as event_count, d.ids as event_ids, d.types as activity_types,
    d.actor_id as actor_admin_id, d.performed_by_email as actor_email, d.ip as actor_ip, h.status as actor_hr_status,
    d.outside_hours as outside_business_hours,
    coalesce(hs.first_detected_at, p.as_of) as detected_at,
    coalesce(hs.first_detected_at, p.as_of) + to_days(p.review_due_days) as review_due_at,
    r.decision, r.reviewed_by, r.reviewed_at, r.note
from described d
cross join p
left join evidence_workspaces w on w.ws = d.ws
left join hr h on h.email = d.actor_email
left join history hs on hs.workspace_id is not distinct from w.workspace_id and hs.finding_id = d.fid
left join latest_review r on r.ws = d.ws and r.finding_id = d.fid;
