-- evidence_access_change_events: one row per access-relevant activity-log event in the period
-- (docs/evidence.md#tables). The trail of provisioning, privilege,
-- team, authentication and vendor-access changes, and who made them.
--
-- An actor is authorised when listed in `access_managers`; with no list configured, when the
-- actor holds a privileged role (recorded in `authorisation_basis`). When the list is empty and
-- the API gives no admin roles in the workspace, nobody can tell: `actor_is_authorised` is null
-- and the change is `unknown`, not `review` (T06 is then not_collected).
-- status: fail    made by someone already terminated in HR at the time
--         review  provisioning or privilege change by an unauthorised actor, not yet reviewed
--         unknown provisioning or privilege change whose actor's authorisation cannot be judged
--         pass    otherwise, or reviewed (evidence_reviews.finding_id = event_id)

create table if not exists evidence.evidence_access_change_events (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    event_id varchar not null,
    created_at timestamptz,
    activity_type varchar,
    change_category varchar,         -- provision | deprovision | privilege | team | authn | vendor_access
    actor_admin_id varchar,
    actor_email varchar,
    actor_ip varchar,
    actor_role_name varchar,
    actor_is_authorised boolean,
    authorisation_basis varchar,     -- access_managers | privileged_role
    actor_hr_status_at_event varchar,
    via_scim boolean,
    description varchar,             -- as stored: contact e-mails and phones already pseudonymised
    metadata_json json,
    review_decision varchar,
    reviewed_by varchar,
    reviewed_at timestamptz
);
create view if not exists evidence.latest_evidence_access_change_events as
select * from evidence.evidence_access_change_events
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_access_change_events);

delete from evidence.evidence_access_change_events where run_id = (select run_id from evidence_params);

insert into evidence.evidence_access_change_events by name
with p as (select * from evidence_params),
events as (
    select l.*,
        case
            when l.activity_type in ('admin_invite_creation', 'admin_invite_change', 'app_admin_join', 'admin_provisioned')
                then 'provision'
            when l.activity_type in ('admin_invite_deletion', 'admin_deletion', 'admin_deprovisioned', 'seat_revoke')
                then 'deprovision'
            when l.activity_type in ('admin_permission_change', 'role_change', 'role_creation', 'role_deletion',
                                     'seat_change', 'inbox_access_change')
                then 'privilege'
            when l.activity_type in ('app_team_creation', 'app_team_deletion', 'app_team_membership_modification')
                then 'team'
            when l.activity_type in ('admin_two_factor_auth_change', 'admin_password_reset_request',
                                     'admin_password_reset_success')
                then 'authn'
            when l.activity_type like 'admin_impersonation_consent%' then 'vendor_access'
        end as category
    from activity l cross join p
    where l.created_at between p.period_start and p.period_end
),
roles as (
    -- whether the API gives admin roles at all in the workspace (some plans and tokens do not)
    select ws, count(role_name) > 0 as roles_known from admin_latest where is_current group by ws
),
judged as (
    select e.*, p.run_id, p.as_of, w.region as ws_region, a.role_name as actor_role,
        case when len(p.access_managers) > 0 then 'access_managers' else 'privileged_role' end as basis,
        case
            when len(p.access_managers) > 0 then list_contains(p.access_managers, e.actor_email)
            when not coalesce(ro.roles_known, false) then null
            else coalesce(list_contains(list_transform(p.privileged_role_names, lambda r: lower(r)), lower(a.role_name)), false)
        end as authorised,
        -- the roster holds today's status: before the termination the person was still employed
        case when h.status = 'terminated' and h.termination_at <= e.created_at then 'terminated'
             when h.status = 'terminated' then 'active'
             else h.status end as hr_at_event,
        r.decision, r.reviewed_by as reviewer, r.reviewed_at as review_at
    from events e
    cross join p
    left join evidence_workspaces w on w.ws = e.ws
    left join admin_latest a on a.ws = e.ws and a.admin_id = e.performed_by_id
    left join roles ro on ro.ws = e.ws
    left join hr h on h.email = e.actor_email
    left join latest_review r on r.ws = e.ws and r.finding_id = e.id
    where e.category is not null
)
select
    run_id, as_of, workspace_id, coalesce(ws_region, region) as region,
    case
        when hr_at_event = 'terminated' then 'fail'
        when decision is not null then 'pass'
        when category in ('provision', 'privilege') and authorised is null then 'unknown'
        when category in ('provision', 'privilege') and not authorised then 'review'
        else 'pass'
    end as status,
    list_filter([
        case when hr_at_event = 'terminated' then 'actor was already terminated in HR' end,
        case when category in ('provision', 'privilege') and authorised is null
             then 'cannot tell whether the actor may change access: the API gives no admin roles and access_managers is empty' end,
        case when category in ('provision', 'privilege') and not authorised
             then 'actor not an access manager' || case when basis = 'privileged_role' then ' (no privileged role)' else '' end end,
        case when decision is not null then 'reviewed: ' || decision end
    ], lambda f: f is not null) as findings,
    id as event_id, created_at, activity_type, category as change_category,
    performed_by_id as actor_admin_id, performed_by_email as actor_email, performed_by_ip as actor_ip,
    actor_role as actor_role_name, authorised as actor_is_authorised, basis as authorisation_basis,
    hr_at_event as actor_hr_status_at_event,
    activity_type in ('admin_provisioned', 'admin_deprovisioned') as via_scim,
    activity_description as description, metadata as metadata_json,
    decision as review_decision, reviewer as reviewed_by, review_at as reviewed_at
from judged;
