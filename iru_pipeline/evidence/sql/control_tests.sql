-- evidence_control_tests: one row per control test T01-T15 and workspace (docs/evidence.md#control-tests-and-their-mappings).
-- Reads this run's rows of the other evidence tables; the catalogue (names, criteria, mappings,
-- required resources and inputs) is controls.py, registered as control_test_catalog.
--
-- status (the one vocabulary of every test, first match wins; controls.py documents it):
--   not_collected   a resource the test needs was skipped (permission, plan) or never collected,
--                   or a human input it needs (HR roster) is not configured
--   fail            failing > 0 by the test's rule
--   not_collected   the test cannot be evaluated on what the API gives (T04 and T06 without
--                   admin roles)
--   not_applicable  the population is empty (no DSAR-tagged conversation, no leaver with an
--                   account here, ...): nothing was measured, so nothing passed
--   manual          T07 unless every login used SSO: MFA enforcement is not in the API
--   review          items a person must look at (open, pending, unknown), or a needed
--                   resource's latest collection failed and older data was evaluated
--   pass            otherwise
-- `failing` and `to_review` are counted separately; `warnings` is the same count as
-- `to_review`, kept under its earlier name for readers of earlier runs.

create table if not exists evidence.evidence_control_tests (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    test_id varchar not null,
    test_name varchar,
    evidence_table varchar,
    soc2 varchar[],
    iso27001 varchar[],
    gdpr varchar[],
    criteria varchar,
    params_json json,
    population bigint,
    failing bigint,
    warnings bigint,                 -- = to_review (its name before the status vocabulary)
    failing_items varchar[],         -- keys of the failing and to-review rows (up to 50)
    evaluated_at timestamptz,
    to_review bigint
);
-- tables written before to_review existed are upgraded in place; their rows keep null
alter table evidence.evidence_control_tests add column if not exists to_review bigint;
create view if not exists evidence.latest_evidence_control_tests as
select * from evidence.evidence_control_tests
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_control_tests);

delete from evidence.evidence_control_tests where run_id = (select run_id from evidence_params);

insert into evidence.evidence_control_tests by name
with p as (select * from evidence_params),
workspaces as (select ws, workspace_id, region from evidence_workspaces),
ar as (select * from evidence.evidence_admin_access_review where run_id = (select run_id from p)),
ob as (select * from evidence.evidence_offboarding_check where run_id = (select run_id from p)),
ace as (select * from evidence.evidence_access_change_events where run_id = (select run_id from p)),
sec as (select * from evidence.evidence_workspace_security_config where run_id = (select run_id from p)),
-- T11 reads the findings tracked across runs: the high-risk findings this run's rows hold
hra as (select * from evidence.evidence_findings
        where run_id = (select run_id from p) and test_id = 'T11' and last_seen_at = as_of),
dr as (select * from evidence.evidence_data_retention where run_id = (select run_id from p)),
inv as (select * from evidence.evidence_personal_data_inventory where run_id = (select run_id from p) and is_custom),
sla as (select * from evidence.evidence_support_request_sla where run_id = (select run_id from p) and request_class = 'dsar'),
cs as (select * from evidence.evidence_collection_stream where run_id = (select run_id from p)),
roles as (select ws, count(role_name) > 0 as roles_known from admin_latest where is_current group by ws),
log_gaps as (
    select ws, count(*) as n,
           list('no activity-log event held from ' || strftime(gap_start, '%Y-%m-%d') || ' to '
                || strftime(gap_end, '%Y-%m-%d') || ' (' || round(epoch(gap_end - gap_start) / 86400, 1) || ' days)'
                order by gap_start) as items
    from activity_log_gaps group by ws
),
metrics as (
    select 'T01' as test_id, r.ws, count(x.admin_id) as population,
           count(*) filter (where x.identity_status in ('unmatched', 'terminated')) as failing, 0 as to_review,
           list(x.admin_email order by x.admin_email) filter (where x.identity_status in ('unmatched', 'terminated')) as items,
           null::varchar as cannot_evaluate, null::varchar as fixed_status, null::varchar[] as details
    from workspaces r left join ar x on
        x.workspace_id is not distinct from r.workspace_id and x.region = r.region
    group by r.ws
    union all
    select 'T02', r.ws, count(x.hr_email) filter (where x.account_found),
           count(*) filter (where x.status = 'fail'), count(*) filter (where x.status = 'pending'),
           list(distinct x.hr_email order by x.hr_email) filter (where x.status in ('fail', 'pending')), null, null, null
    from workspaces r left join ob x on
        x.workspace_id is not distinct from r.workspace_id and x.region = r.region
    group by r.ws
    union all
    select 'T03', r.ws, count(x.admin_id),
           count(*) filter (where x.staleness = 'stale' and not list_contains(x.exception_kinds, 'inactive')),
           count(*) filter (where x.staleness = 'unknown'),
           list(x.admin_email order by x.admin_email) filter (
               where (x.staleness = 'stale' and not list_contains(x.exception_kinds, 'inactive')) or x.staleness = 'unknown'),
           null, null, null
    from workspaces r left join ar x on
        x.workspace_id is not distinct from r.workspace_id and x.region = r.region
    group by r.ws
    union all
    select 'T04', r.ws, count(x.admin_id),
           case when count(*) filter (where x.is_privileged) > any_value(p.max_privileged_admins)
                then count(*) filter (where x.is_privileged) else 0 end,
           count(*) filter (where x.is_privileged and not list_contains(x.exception_kinds, 'privileged')),
           list(x.admin_email order by x.admin_email) filter (where x.is_privileged),
           case when count(x.admin_id) > 0 and count(x.role_name) = 0 then 'the API gives no admin roles' end, null, null
    from workspaces r cross join p left join ar x on
        x.workspace_id is not distinct from r.workspace_id and x.region = r.region
    group by r.ws
    union all
    select 'T05', r.ws, count(x.admin_id),
           count(*) filter (where x.shared_account_suspected and not list_has_any(x.exception_kinds, ['shared', 'service'])),
           0,
           list(x.admin_email order by x.admin_email) filter (
               where x.shared_account_suspected and not list_has_any(x.exception_kinds, ['shared', 'service'])),
           null, null, null
    from workspaces r left join ar x on
        x.workspace_id is not distinct from r.workspace_id and x.region = r.region
    group by r.ws
    union all
    select 'T06', r.ws, count(x.event_id),
           count(*) filter (where x.status = 'fail'), count(*) filter (where x.status = 'review'),
           list(x.event_id order by x.created_at, x.event_id) filter (where x.status in ('fail', 'review')),
           case when len(any_value(p.access_managers)) = 0 and not coalesce(any_value(ro.roles_known), false)
                then 'the API gives no admin roles and access_managers is empty' end,
           null, null
    from workspaces r cross join p left join ace x
        on x.workspace_id is not distinct from r.workspace_id and x.region = r.region
    left join roles ro on ro.ws = r.ws
    group by r.ws
    union all
    select 'T07', r.ws, count(x.setting_key), 0, 0, []::varchar[], null,
           case when bool_or(x.status = 'pass') then 'pass' else 'manual' end, null
    from workspaces r left join sec x on
        x.workspace_id is not distinct from r.workspace_id and x.region = r.region and x.setting_key = 'sso_login_share_pct'
    group by r.ws
    union all
    select 'T08', r.ws, count(x.setting_key),
           count(*) filter (where x.status = 'fail'), count(*) filter (where x.status = 'unknown'),
           list(x.setting_key) filter (where x.status <> 'pass'), null, null, null
    from workspaces r left join sec x on
        x.workspace_id is not distinct from r.workspace_id and x.region = r.region and x.setting_key = 'identity_verification'
    group by r.ws
    union all
    select 'T09', r.ws, count(x.setting_key),
           count(*) filter (where x.status = 'fail'), count(*) filter (where x.status in ('review', 'unknown')),
           list(x.setting_key || ': ' || coalesce(x.observed_value, 'unknown') order by x.setting_key)
               filter (where x.status <> 'pass'),
           null, null, flatten(list(x.findings order by x.setting_key) filter (where x.status <> 'pass'))
    from workspaces r left join sec x on x.workspace_id is not distinct from r.workspace_id and x.region = r.region
        and x.setting_key in ('data_region', 'data_region_matches_configured', 'api_host_region_consistent')
    group by r.ws
    union all
    select 'T10', r.ws, coalesce(any_value(h.events), 0),
           -- requested windows that leave a hole or start late: the data was never asked for
           count(*) filter (where x.coverage_gaps > 0 or x.coverage_start > p.period_start),
           -- what the logs held show: stretches without any event, collection lagging behind
           coalesce(any_value(g.n), 0)
               + count(*) filter (where x.coverage_end < p.as_of - to_hours(p.activity_log_max_lag_hours)),
           flatten([flatten(list(list_filter([
               case when x.coverage_gaps > 0 then x.coverage_gaps || ' gap(s) between requested windows' end,
               case when x.coverage_start > p.period_start
                    then 'logs requested only from ' || strftime(x.coverage_start, '%Y-%m-%d') end,
               case when x.coverage_end < p.as_of - to_hours(p.activity_log_max_lag_hours)
                    then 'newest requested window ends ' || strftime(x.coverage_end, '%Y-%m-%d %H:%M') end
           ], lambda f: f is not null))), coalesce(any_value(g.items), []::varchar[])]),
           null, null,
           [case when any_value(h.events) is null then 'held logs: no event in the period'
                 else 'held logs: first event ' || strftime(any_value(h.first_event_at), '%Y-%m-%d %H:%M')
                      || ', last event ' || strftime(any_value(h.last_event_at), '%Y-%m-%d %H:%M') || ', '
                      || any_value(h.events) || ' event(s); ' || coalesce(any_value(g.n), 0)
                      || ' stretch(es) longer than ' || any_value(p.activity_log_max_gap_hours) || ' hours without an event'
            end]
    from workspaces r cross join p
    left join cs x on x.workspace_id is not distinct from r.workspace_id and x.region = r.region and x.stream = 'activity_logs'
    left join activity_log_held h on h.ws = r.ws
    left join log_gaps g on g.ws = r.ws
    group by r.ws
    union all
    select 'T11', r.ws, count(x.finding_id),
           count(*) filter (where x.status = 'fail'), count(*) filter (where x.status = 'review'),
           list(x.finding_id order by x.first_event_at, x.finding_id) filter (where x.status in ('fail', 'review')),
           null, null, null
    from workspaces r left join hra x on
        x.workspace_id is not distinct from r.workspace_id and x.region = r.region
    group by r.ws
    union all
    select 'T12', r.ws, coalesce(sum(x.population), 0),
           coalesce(sum(x.over_retention) filter (where x.status = 'fail'), 0), 0,
           list(x.object_type || ': ' || x.over_retention || ' past ' || x.retention_days || ' days' order by x.object_type)
               filter (where x.status = 'fail'),
           null, null, null
    from workspaces r left join dr x on
        x.workspace_id is not distinct from r.workspace_id and x.region = r.region
    group by r.ws
    union all
    select 'T13', r.ws, count(x.dimension_value),
           count(*) filter (where x.status = 'fail'), count(*) filter (where x.status = 'review'),
           list(x.object_type || ': ' || x.dimension_value order by x.object_type, x.dimension_value)
               filter (where x.status in ('fail', 'review')),
           null, null, null
    from workspaces r left join inv x on
        x.workspace_id is not distinct from r.workspace_id and x.region = r.region
    group by r.ws
    union all
    select 'T14', r.ws, coalesce(sum(x.conversations), 0), coalesce(sum(x.late_or_unanswered), 0), 0,
           flatten(list(x.late_conversation_ids order by x.period_month, x.team_id)), null, null, null
    from workspaces r left join sla x on
        x.workspace_id is not distinct from r.workspace_id and x.region = r.region
    group by r.ws
    union all
    select 'T15', r.ws, count(x.stream), count(*) filter (where x.status <> 'ok'), 0,
           list(x.stream || ': ' || x.status || coalesce(' (' || x.error_code || ')', '') order by x.stream)
               filter (where x.status <> 'ok'),
           null, null, null
    from workspaces r left join cs x on
        x.workspace_id is not distinct from r.workspace_id and x.region = r.region
    group by r.ws
),
needs as (
    -- what each test lacks in each workspace: resources not collected, stale resources, human inputs
    select t.test_id, r.ws,
           coalesce(list(s.stream || ' (' || coalesce(s.error_code, s.latest_status, 'never collected') || ')'
                         order by s.stream) filter (where s.input_state = 'not_collected'), []::varchar[]) as not_collected,
           coalesce(list(s.stream order by s.stream) filter (where s.input_state = 'stale'), []::varchar[]) as stale,
           case when list_contains(t.required_inputs, 'hr_roster') and not any_value(p.hr_roster_provided)
                then ['hr_roster'] else []::varchar[] end as missing_inputs
    from control_test_catalog t
    cross join workspaces r
    cross join p
    left join stream_state s on s.ws = r.ws and list_contains(t.required_streams, s.stream)
    group by t.test_id, r.ws, t.required_inputs
),
judged as (
    select m.*, n.not_collected, n.stale, n.missing_inputs,
           case
               when len(n.missing_inputs) > 0 or len(n.not_collected) > 0 then 'not_collected'
               when m.failing > 0 then 'fail'
               when m.cannot_evaluate is not null then 'not_collected'
               -- an empty population measured nothing (T10 and T11 judge the logs held instead)
               when m.population = 0 and m.test_id not in ('T10', 'T11') then 'not_applicable'
               when m.fixed_status is not null then m.fixed_status
               when m.to_review > 0 or len(n.stale) > 0 then 'review'
               else 'pass'
           end as result
    from metrics m
    join needs n using (test_id, ws)
)
select
    p.run_id, p.as_of, r.workspace_id, r.region, j.result as status,
    list_filter(flatten([
        list_transform(j.not_collected, lambda s: 'not collected: ' || s),
        list_transform(j.missing_inputs, lambda s: 'input not configured: ' || s || ' (IRU_EVIDENCE_CONFIG [inputs])'),
        [case when j.cannot_evaluate is not null then 'not collected: ' || j.cannot_evaluate end],
        list_transform(j.stale, lambda s: 'evaluated on older data: the latest collection of ' || s || ' failed'),
        [case when j.result in ('fail', 'review') and j.failing + j.to_review > 0
              then j.failing || ' failing, ' || j.to_review || ' to review of ' || j.population end],
        [case when j.result = 'not_applicable' then 'not applicable: nothing to evaluate in this workspace' end],
        case when j.result <> 'not_collected' then coalesce(j.details, []::varchar[]) end,
        [case when j.result = 'manual' then 'manual evidence needed: see evidence_workspace_security_config.mfa_enforcement' end]
    ]), lambda f: f is not null) as findings,
    j.test_id, t.test_name, t.evidence_table, t.soc2, t.iso27001, t.gdpr, t.criteria, t.params_json,
    j.population, j.failing, j.to_review as warnings, j.to_review, coalesce(j.items, []::varchar[])[1:50] as failing_items,
    p.as_of as evaluated_at
from judged j
cross join p
join control_test_catalog t using (test_id)
join workspaces r using (ws);
