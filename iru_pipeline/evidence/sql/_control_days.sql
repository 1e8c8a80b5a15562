-- The day rule of the control-test history, shared by evidence_control_test_history (written by
-- every evidence run) and an export's period history (`export --period`, period_history.sql).
--
-- control_test_days(days, evaluated): for each row of `days` (region, workspace_id, test_id,
-- day), the status of that day's last evaluation in `evaluated` (by as_of, then run_id), or
--   no_run   nothing evaluated the test in that workspace that day. Never carried over from an
--            earlier day: a gap in collection stays visible.
-- `evaluated` has region, workspace_id, test_id, day (UTC), status, findings, population,
-- failing, to_review, run_id and as_of. Both arguments are table names (CTEs included).
create or replace temp macro control_test_days(days, evaluated) as table
with last_of_day as (
    select *, count(*) over (partition by workspace_id, region, test_id, day) as runs_that_day
    from query_table(evaluated)
    qualify row_number() over (partition by workspace_id, region, test_id, day order by as_of desc, run_id desc) = 1
)
select
    d.region, d.workspace_id, d.test_id, d.day,
    coalesce(l.status, 'no_run') as status,
    case when l.run_id is null then ['no evidence run on this day'] else coalesce(l.findings, []::varchar[]) end
        as findings,
    l.run_id as day_run_id, l.as_of as day_run_as_of, coalesce(l.runs_that_day, 0) as runs_that_day,
    l.population, l.failing, l.to_review
from query_table(days) d
left join last_of_day l on l.workspace_id is not distinct from d.workspace_id and l.region = d.region
    and l.test_id = d.test_id and l.day = d.day;
