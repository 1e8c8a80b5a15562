-- evidence_admin_access_review: one row per current admin per workspace (docs/evidence.md#tables).
-- The user-access list of an access review. Intercom does not give creation date, last login
-- or MFA; the snapshot history and the activity log give first seen, last activity,
-- last login and its sign-in method instead.
--
-- status: fail    terminated in HR, not in the HR roster (no approved exception), or stale
--         review  shared-looking (generic address, generic display name, many login IPs), unverified
--                 e-mail, privileged, external, or never active yet
--         pass    otherwise

create table if not exists evidence.evidence_admin_access_review (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    admin_id varchar not null,
    admin_name varchar,
    admin_email varchar,
    email_domain varchar,
    domain_class varchar,            -- internal | external | unknown (no internal_domains configured)
    job_title varchar,
    role_id varchar,
    role_name varchar,               -- null when the API gives no role
    is_privileged boolean,
    has_inbox_seat boolean,
    away_mode_enabled boolean,
    email_verified boolean,
    team_ids varchar[],
    team_names varchar[],
    first_seen_at timestamptz,       -- earliest of: first snapshot, invitation, first activity
    invited_at timestamptz,          -- admin_invite_creation naming the e-mail
    last_activity_at timestamptz,
    last_login_at timestamptz,
    last_sign_in_method varchar,
    login_ips_30d bigint,
    days_inactive integer,
    staleness varchar,               -- active | stale | unused (never active, still new) | unknown (no log coverage)
    shared_account_suspected boolean,
    hr_person_id varchar,
    hr_status varchar,
    hr_termination_at timestamptz,
    identity_status varchar,         -- matched | terminated | approved_exception | unmatched | not_checked (no roster)
    exception_kinds varchar[],
    exception_expires_at timestamptz
);
create view if not exists evidence.latest_evidence_admin_access_review as
select * from evidence.evidence_admin_access_review
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_admin_access_review);

delete from evidence.evidence_admin_access_review where run_id = (select run_id from evidence_params);

insert into evidence.evidence_admin_access_review by name
with p as (select * from evidence_params),
admins as (
    select a.*, lower(a.email) as email_lc,
           lower(split_part(a.email, '@', 1)) as local_part,
           lower(split_part(a.email, '@', 2)) as domain
    from raw_admins a
    where a._dlt_valid_to is null
),
snapshots as (
    select workspace_id as ws, id as admin_id, min(_dlt_valid_from) as first_snapshot_at from raw_admins group by all
),
act as (
    select ws, performed_by_id as admin_id,
           min(created_at) as first_activity_at,
           max(created_at) as last_activity_at,
           max(created_at) filter (where activity_type = 'admin_login_success') as last_login_at,
           arg_max(metadata ->> 'sign_in_method', created_at) filter (where activity_type = 'admin_login_success')
               as last_sign_in_method,
           count(distinct performed_by_ip) filter (
               where activity_type = 'admin_login_success' and created_at > p.as_of - interval 30 day) as login_ips_30d
    from activity cross join p
    where performed_by_id is not null
    group by all
),
invites as (
    -- the invitation names the invitee's e-mail in its description (match on text: docs/evidence.md#caveats-the-evidence-states)
    select a.workspace_id as ws, a.id as admin_id, min(l.created_at) as invited_at
    from admins a
    join activity l on l.ws = a.workspace_id and l.activity_type = 'admin_invite_creation'
        and contains(lower(coalesce(l.activity_description, '') || ' ' || coalesce(l.metadata::varchar, '')), a.email_lc)
    group by all
),
teams as (
    select a.workspace_id as ws, a.id as admin_id, list(t.name order by t.name) as team_names
    from admins a, unnest(a.team_ids) as u(team_id)
    join raw_teams t on t.workspace_id = a.workspace_id and t.id = u.team_id and t._dlt_valid_to is null
    group by all
),
logs as (
    -- how far back the logs held reach: a window requested but holding nothing proves no absence
    select s.ws, s.input_state, greatest(v.coverage_start, h.first_event_at) as coverage_start
    from stream_state s
    left join stream_coverage v using (ws, stream)
    left join (select workspace_id, min(created_at) as first_event_at from raw_activity_logs group by workspace_id) h
        on h.workspace_id = s.ws
    where s.stream = 'activity_logs'
),
exceptions as (
    -- every identifier the row gives must agree; admin ids repeat across workspaces, so an id
    -- is only ever read with its workspace (inputs.py refuses an id given alone), while an
    -- e-mail alone names a person and applies in every workspace
    select a.workspace_id as ws, a.id as admin_id, list(distinct x.kind order by x.kind) as kinds, min(x.expires_at) as expires_at
    from admins a cross join p
    join access_exceptions x on (x.admin_id is null or x.admin_id = a.id)
        and (x.email is null or x.email = a.email_lc)
        and (x.workspace_id is null or x.workspace_id = a.workspace_id)
        and (x.region is null or x.region = a.region)
        and (x.expires_at is null or x.expires_at > p.as_of)
    group by all
),
base as (
    select a.*, p.*, w.region as ws_region,
           s.first_snapshot_at, i.invited_at, act.first_activity_at, act.last_activity_at, act.last_login_at,
           act.last_sign_in_method, coalesce(act.login_ips_30d, 0) as ips_30d,
           t.team_names, h.person_id, h.status as hr_status_raw, h.termination_at,
           coalesce(x.kinds, []::varchar[]) as kinds, x.expires_at,
           logs.input_state as logs_state, logs.coverage_start as logs_from,
           coalesce(act.last_activity_at, i.invited_at, s.first_snapshot_at) as active_reference,
           coalesce(list_contains(list_transform(p.privileged_role_names, lambda r: lower(r)), lower(a.role_name)), false)
               as privileged
    from admins a
    cross join p
    left join evidence_workspaces w on w.ws = a.workspace_id
    left join snapshots s on s.ws = a.workspace_id and s.admin_id = a.id
    left join invites i on i.ws = a.workspace_id and i.admin_id = a.id
    left join act on act.ws = a.workspace_id and act.admin_id = a.id
    left join teams t on t.ws = a.workspace_id and t.admin_id = a.id
    left join hr h on h.email = a.email_lc
    left join exceptions x on x.ws = a.workspace_id and x.admin_id = a.id
    left join logs on logs.ws = a.workspace_id
),
judged as (
    select *,
        case
            when logs_state = 'not_collected' then 'unknown'
            when last_activity_at >= as_of - to_days(stale_admin_days) then 'active'
            when last_activity_at is not null then 'stale'
            -- never active: new accounts are "unused"; old ones are stale once the log covers the threshold
            when active_reference > as_of - to_days(stale_admin_days) then 'unused'
            when logs_from <= as_of - to_days(stale_admin_days) then 'stale'
            else 'unknown'
        end as staleness_value,
        case
            when hr_status_raw = 'terminated' then 'terminated'
            when person_id is not null then 'matched'
            when len(kinds) > 0 then 'approved_exception'
            when not hr_roster_provided then 'not_checked'
            else 'unmatched'
        end as identity,
        case
            when len(internal_domains) = 0 then 'unknown'
            when list_contains(internal_domains, domain) then 'internal'
            else 'external'
        end as domain_class_value,
        list_contains(generic_localparts, local_part) as generic_address,
        -- a display name made only of generic words ("Support", "Sales Team") names no person
        coalesce(len(name_words) > 0 and list_has_all(generic_display_names, name_words), false) as generic_name,
        ips_30d >= shared_account_min_ips as many_ips
    from (select *, list_filter(regexp_split_to_array(lower(trim(coalesce(name, ''))), '[^[:alnum:]]+'),
                                lambda w: w <> '') as name_words
          from base)
),
shared as (
    select *, generic_address or generic_name or many_ips as shared_suspected from judged
),
flagged as (
    select *,
        list_filter([
            case when identity = 'terminated' then 'terminated in HR roster' end,
            case when identity = 'unmatched' then 'not in HR roster and no approved exception' end,
            case when staleness_value = 'stale' and not list_contains(kinds, 'inactive')
                 then 'stale: no activity for ' || stale_admin_days || '+ days' end,
            case when staleness_value = 'unused' then 'never active since joining' end,
            case when staleness_value = 'unknown' then 'activity unknown: activity logs not collected or too short' end,
            case when generic_address and not list_has_any(kinds, ['shared', 'service'])
                 then 'looks shared: generic address' end,
            case when generic_name and not list_has_any(kinds, ['shared', 'service'])
                 then 'looks shared: generic name' end,
            case when many_ips and not list_has_any(kinds, ['shared', 'service'])
                 then 'looks shared: ' || ips_30d || ' login IPs in 30 days' end,
            case when email_verified = false then 'e-mail not verified' end,
            case when privileged and not list_contains(kinds, 'privileged') then 'privileged role: ' || role_name end,
            case when domain_class_value = 'external' and not list_contains(kinds, 'external') then 'external e-mail domain' end
        ], lambda f: f is not null) as findings_list
    from shared
)
select
    run_id, as_of, workspace_id, coalesce(ws_region, region) as region,
    case
        when identity in ('terminated', 'unmatched')
          or (staleness_value = 'stale' and not list_contains(kinds, 'inactive')) then 'fail'
        when len(findings_list) > 0 and not (len(findings_list) = 1 and staleness_value = 'unknown') then 'review'
        else 'pass'
    end as status,
    findings_list as findings,
    id as admin_id, name as admin_name, email as admin_email, domain as email_domain,
    domain_class_value as domain_class, job_title, role_id, role_name, privileged as is_privileged,
    has_inbox_seat, away_mode_enabled, email_verified,
    coalesce(team_ids, []::varchar[]) as team_ids, coalesce(team_names, []::varchar[]) as team_names,
    least(first_snapshot_at, invited_at, first_activity_at) as first_seen_at, invited_at,
    last_activity_at, last_login_at, last_sign_in_method, ips_30d as login_ips_30d,
    date_diff('day', active_reference, as_of)::integer as days_inactive,
    staleness_value as staleness, shared_suspected as shared_account_suspected,
    person_id as hr_person_id, hr_status_raw as hr_status, termination_at as hr_termination_at,
    identity as identity_status, kinds as exception_kinds, expires_at as exception_expires_at
from flagged;
