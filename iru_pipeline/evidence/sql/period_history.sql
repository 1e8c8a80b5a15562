-- The control-test history over an export's period (`iru-pipeline export --period`): one row per
-- control test, workspace and UTC day, from the first day a sealed run evaluated the workspace in
-- the period (never before the period start) to the period end or the last sealed run's day,
-- whichever comes first. status: the control-test status of that day's last sealed run, or
-- no_run: the day rule of control_test_history.sql (control_test_days, _control_days.sql). A run counts once it is sealed (its evidence_collection_run rows
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
)
select * from control_test_days('days', 'evaluated')
order by region, workspace_id, test_id, day
