-- evidence_collection_proof: proof of collection, one row per response of a snapshot endpoint
-- (/me, /admins, /teams, /tags, /data_attributes, /conversations/attributes) in the latest
-- ingestion run of each workspace that recorded any (intercom.collection_proofs).
-- What Intercom answered is kept as a hash only: body_sha256 of the body as received, with
-- Intercom's request id, the HTTP status, the time received and the base URL asked. A base
-- URL other than https://api.intercom.io, api.eu.intercom.io or api.au.intercom.io (a proxy,
-- a test double, loopback) is `review`: the evidence is only as good as that host.
--
-- status: info | review

create table if not exists evidence.evidence_collection_proof (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    endpoint varchar not null,
    resource varchar,
    ingestion_run_id varchar,
    received_at timestamptz,
    api_base_url varchar,
    intercom_api_host boolean,
    http_status integer,
    request_id varchar,
    body_sha256 varchar,
    body_bytes bigint
);
create view if not exists evidence.latest_evidence_collection_proof as
select * from evidence.evidence_collection_proof
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_collection_proof);

delete from evidence.evidence_collection_proof where run_id = (select run_id from evidence_params);

insert into evidence.evidence_collection_proof by name
with p as (select * from evidence_params),
latest as (
    select ws, arg_max(run_id, received_at) as ingestion_run_id
    from proof_runs
    group by ws
),
proofs as (
    select x.*, x.api_base_url in (select 'https://' || official_host from region_catalog) as intercom_api_host
    from proof_runs x
    join latest l on l.ws = x.ws and l.ingestion_run_id = x.run_id
)
select
    p.run_id, p.as_of, r.workspace_id, coalesce(r.region, x.region) as region,
    case when x.intercom_api_host then 'info' else 'review' end as status,
    list_filter([
        case when not x.intercom_api_host
             then 'collected from ' || coalesce(x.api_base_url, 'an unknown host') || ', not an Intercom API host' end,
        case when x.http_status >= 400 then 'HTTP ' || x.http_status end
    ], lambda f: f is not null) as findings,
    x.endpoint, x.resource, x.run_id as ingestion_run_id, x.received_at, x.api_base_url, x.intercom_api_host,
    x.http_status, x.request_id, x.body_sha256, x.body_bytes
from proofs x
cross join p
left join evidence_workspaces r on r.ws = x.ws;
