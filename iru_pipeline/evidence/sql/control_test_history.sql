-- evidence_control_test_history: the audit window as data. One row per control test, workspace
-- and UTC day, from the first day the workspace was evaluated (but not before the period start)
-- to the day of the run: the status of that day's last run (by as_of, then run_id).
--
-- status: the control-test status of that day's last run, or
--   no_run   no evidence run evaluated this workspace that day. Never carried over from an
--            earlier day: a gap in collection stays visible.
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
    select t.workspace_id, t.region, t.test_id, t.status, t.findings, t.population, t.failing, t.run_id, t.as_of,
           cast(timezone('UTC', t.as_of) as date) as day
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
),
last_of_day as (
    select *, count(*) over (partition by workspace_id, region, test_id, day) as runs_that_day
    from evaluated
    qualify row_number() over (partition by workspace_id, region, test_id, day order by as_of desc, run_id desc) = 1
)
select
    p.run_id, p.as_of, d.workspace_id, d.region,
    coalesce(l.status, 'no_run') as status,
    case when l.run_id is null then ['no evidence run on this day'] else coalesce(l.findings, []::varchar[]) end
        as findings,
    d.test_id, d.day, l.run_id as day_run_id, l.as_of as day_run_as_of,
    coalesce(l.runs_that_day, 0) as runs_that_day, l.population, l.failing
from days d
cross join p
left join last_of_day l on l.workspace_id is not distinct from d.workspace_id and l.region = d.region
    and l.test_id = d.test_id and l.day = d.day;
