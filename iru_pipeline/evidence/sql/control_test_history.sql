-- evidence_control_test_history: the audit window as data. One row per control test, workspace
-- and UTC day, from the first day the workspace was evaluated (but not before the period start)
-- to the day of the run: the status of that day's last run (by as_of, then run_id), or no_run
-- when no evidence run evaluated the workspace that day, never carried over from an earlier day
-- (control_test_days, _control_days.sql, shared with an export's period history).
--
-- Bounded by the first run rather than the whole period, so a product installed a month ago
-- shows a month, not 335 empty days before it existed. Only this run and the runs chained
-- before it (prior_runs) with an as_of up to this run's count: deriving a run again, after
-- runs written later, gives the same rows, and a run that never reached its manifest is not
-- shown. Written before evidence_collection_run, so each run's history is covered by its
-- manifest hash.

create table if not exists evidence.evidence_control_test_history (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    test_id varchar not null,
    day date not null,               -- UTC
    day_run_id varchar,              -- the day's last run; null when status is no_run
    day_run_as_of timestamptz,
    runs_that_day bigint,            -- evidence runs that evaluated the test that day
    population bigint,
    failing bigint
);
create view if not exists evidence.latest_evidence_control_test_history as
select * from evidence.evidence_control_test_history
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_control_test_history);

delete from evidence.evidence_control_test_history where run_id = (select run_id from evidence_params);

insert into evidence.evidence_control_test_history by name
with p as (select * from evidence_params),
current as (
    select region, workspace_id, test_id
    from evidence.evidence_control_tests
    where run_id = (select run_id from p)
),
evaluated as (
    select t.workspace_id, t.region, t.test_id, t.status, t.findings, t.population, t.failing, t.to_review,
           t.run_id, t.as_of, cast(timezone('UTC', t.as_of) as date) as day
    from evidence.evidence_control_tests t cross join p
    where t.as_of <= p.as_of and (t.run_id = p.run_id or t.run_id in (select run_id from prior_runs))
),
first_day as (
    select workspace_id, region,
           greatest(min(e.day), cast(timezone('UTC', any_value(p.period_start)) as date)) as first_day
    from evaluated e cross join p
    group by workspace_id, region
),
days as (
    select c.region, c.workspace_id, c.test_id, cast(d.day as date) as day
    from current c
    join first_day f on f.workspace_id is not distinct from c.workspace_id and f.region = c.region
    cross join p
    cross join lateral generate_series(f.first_day, cast(timezone('UTC', p.as_of) as date), interval 1 day) as d(day)
)
select p.run_id, p.as_of, c.* exclude (to_review)
from control_test_days('days', 'evaluated') c
cross join p;
