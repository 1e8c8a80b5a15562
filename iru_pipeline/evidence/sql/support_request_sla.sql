-- evidence_support_request_sla: one row per workspace, month (of creation), team and request
-- class, for conversations created in the period (docs/evidence.md#tables).
--
-- all       inbound conversations (started by a user, lead or contact); info
-- dsar      tagged with one of dsar_tags (any author: tagging is the human classification);
--           answered = first admin reply; fail if a reply came after dsar_sla_days, or none
--           while overdue (GDPR Art. 12(3): one month)
-- security  tagged with one of security_tags; review if the first reply took longer than
--           security_first_reply_hours
-- The evidence is only as good as the tagging discipline.

create table if not exists evidence.evidence_support_request_sla (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    period_month date not null,
    team_id varchar,                 -- null: unassigned
    team_name varchar,
    request_class varchar not null,  -- all | dsar | security
    first_reply_due_hours integer,
    resolution_due_hours integer,
    conversations bigint,
    replied bigint,
    late_or_unanswered bigint,       -- first reply after the due time, or none while overdue
    p50_first_reply_s double,
    p90_first_reply_s double,
    pct_first_reply_within_sla double,
    closed bigint,
    p50_time_to_first_close_s double,
    pct_closed_within_sla double,
    open_breaching bigint,           -- still open past the resolution due time
    sla_missed bigint,               -- Intercom's own SLA status 'missed'
    late_conversation_ids varchar[]  -- dsar and security only
);
create view if not exists evidence.latest_evidence_support_request_sla as
select * from evidence.evidence_support_request_sla
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_support_request_sla);

delete from evidence.evidence_support_request_sla where run_id = (select run_id from evidence_params);

insert into evidence.evidence_support_request_sla by name
with p as (select * from evidence_params),
conv as (
    select c.*, list_transform(coalesce(c.tag_names, []::varchar[]), lambda t: lower(t)) as tags_lc
    from raw_conversations c cross join p
    where c.created_at between p.period_start and p.period_end
),
classed as (
    select conv.*, 'all' as request_class, p.first_reply_sla_hours as reply_h, p.resolution_sla_hours as close_h
    from conv cross join p
    where lower(source_author_type) in ('user', 'lead', 'contact')
    union all
    select conv.*, 'dsar', p.dsar_sla_days * 24, p.dsar_sla_days * 24
    from conv cross join p where list_has_any(tags_lc, p.dsar_tags)
    union all
    select conv.*, 'security', p.security_first_reply_hours, p.resolution_sla_hours
    from conv cross join p where list_has_any(tags_lc, p.security_tags)
),
timed as (
    select *,
           coalesce(time_to_admin_reply, epoch(first_admin_reply_at - created_at))::double as reply_s,
           coalesce(time_to_first_close, epoch(first_close_at - created_at))::double as close_s,
           created_at + to_hours(reply_h) as reply_due,
           created_at + to_hours(close_h) as close_due
    from classed
),
flagged as (
    select timed.*,
           (first_admin_reply_at is not null and first_admin_reply_at > reply_due)
               or (first_admin_reply_at is null and reply_s is null and p.as_of > reply_due) as late,
           coalesce(state, '') <> 'closed' and first_close_at is null and p.as_of > close_due as breaching
    from timed cross join p
),
grouped as (
    select workspace_id as ws, any_value(region) as region, date_trunc('month', created_at)::date as period_month, team_assignee_id as team_id, request_class,
           any_value(reply_h) as reply_h, any_value(close_h) as close_h,
           count(*) as conversations,
           count(reply_s) as replied,
           count(*) filter (where late) as late_n,
           quantile_cont(reply_s, 0.5) as p50_reply, quantile_cont(reply_s, 0.9) as p90_reply,
           avg(case when reply_s is not null then (reply_s <= reply_h * 3600)::int end) as reply_ok,
           count(close_s) as closed,
           quantile_cont(close_s, 0.5) as p50_close,
           avg(case when close_s is not null then (close_s <= close_h * 3600)::int end) as close_ok,
           count(*) filter (where breaching) as breaching_n,
           count(*) filter (where sla_status = 'missed') as missed_n,
           list(id order by created_at, id) filter (where late) as late_ids
    from flagged
    group by workspace_id, period_month, team_id, request_class
)
select
    p.run_id, p.as_of, coalesce(w.workspace_id, g.ws) as workspace_id, coalesce(w.region, g.region) as region,
    case
        when g.request_class = 'dsar' and g.late_n > 0 then 'fail'
        when g.request_class = 'security' and g.late_n > 0 then 'review'
        when g.request_class in ('dsar', 'security') then 'pass'
        else 'info'
    end as status,
    list_filter([
        case when g.request_class in ('dsar', 'security') and g.late_n > 0
             then g.late_n || ' ' || g.request_class || ' request(s) not answered within '
                  || case when g.request_class = 'dsar' then (g.reply_h // 24) || ' days' else g.reply_h || ' hours' end end
    ], lambda f: f is not null) as findings,
    g.period_month, g.team_id, coalesce(t.name, case when g.team_id is null then '(unassigned)' end) as team_name,
    g.request_class, g.reply_h as first_reply_due_hours, g.close_h as resolution_due_hours,
    g.conversations, g.replied, g.late_n as late_or_unanswered,
    round(g.p50_reply, 1) as p50_first_reply_s, round(g.p90_reply, 1) as p90_first_reply_s,
    round(100.0 * g.reply_ok, 2) as pct_first_reply_within_sla,
    g.closed, round(g.p50_close, 1) as p50_time_to_first_close_s, round(100.0 * g.close_ok, 2) as pct_closed_within_sla,
    g.breaching_n as open_breaching, g.missed_n as sla_missed,
    case when g.request_class in ('dsar', 'security') then coalesce(g.late_ids, []::varchar[]) end as late_conversation_ids
from grouped g
cross join p
left join evidence_workspaces w on w.ws = g.ws
left join raw_teams t on t.workspace_id = g.ws and t.id = g.team_id and t._dlt_valid_to is null;
