-- The control-test history over an export's period (`iru-pipeline export --period`): one row per
-- control test, workspace and UTC day, from the first day a sealed run evaluated the workspace in
-- the period (never before the period start) to the period end or the last sealed run's day,
-- whichever comes first. status: the control-test status of that day's last sealed run (by
-- as_of, then run_id), or no_run (never carried over from an earlier day), as in
-- control_test_history.sql. A run counts once it is sealed (its evidence_collection_run rows
-- exist, written in the transaction that chains it: manifest.py).
-- Reads the temp table period_window (start_day date, end_day date).
with w as (select * from period_window),
sealed as (select distinct run_id from evidence.evidence_collection_run),
evaluated as (
    select t.region, t.workspace_id, t.test_id, t.status, t.findings, t.population, t.failing, t.to_review,
           t.run_id, t.as_of, cast(timezone('UTC', t.as_of) as date) as day
    from evidence.evidence_control_tests t cross join w
    where t.run_id in (select run_id from sealed)
      and cast(timezone('UTC', t.as_of) as date) between w.start_day and w.end_day
),
bounds as (
    select workspace_id, region, min(day) as first_day, (select max(day) from evaluated) as last_day
    from evaluated group by workspace_id, region
),
pairs as (
    select distinct workspace_id, region, test_id from evaluated
),
days as (
    select p.region, p.workspace_id, p.test_id, cast(d.day as date) as day
    from pairs p
    join bounds b on b.workspace_id is not distinct from p.workspace_id and b.region = p.region
    cross join lateral generate_series(b.first_day, b.last_day, interval 1 day) as d(day)
),
last_of_day as (
    select *, count(*) over (partition by workspace_id, region, test_id, day) as runs_that_day
    from evaluated
    qualify row_number() over (partition by workspace_id, region, test_id, day order by as_of desc, run_id desc) = 1
)
select
    d.region, d.workspace_id, d.test_id, d.day,
    coalesce(l.status, 'no_run') as status,
    case when l.run_id is null then ['no evidence run on this day'] else coalesce(l.findings, []::varchar[]) end
        as findings,
    l.run_id as day_run_id, l.as_of as day_run_as_of, coalesce(l.runs_that_day, 0) as runs_that_day,
    l.population, l.failing, l.to_review
from days d
left join last_of_day l on l.workspace_id is not distinct from d.workspace_id and l.region = d.region
    and l.test_id = d.test_id and l.day = d.day
order by d.region, d.workspace_id, d.test_id, d.day
