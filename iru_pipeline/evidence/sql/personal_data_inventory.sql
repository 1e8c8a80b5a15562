-- evidence_personal_data_inventory: aggregate counts only (docs/evidence.md#tables).
-- One row per workspace, record type (contact_user, contact_lead, ..., conversation), dimension
-- and value. Supports the Art. 30 record of processing and minimisation: which categories of
-- personal data are actually held, which custom attributes exist (sensitive-looking ones
-- flagged), how many contacts sit on internal or free-mail domains, and where data subjects are.
--
-- dimension           dimension_value
-- attribute           a standard field (email, phone, ...): contacts with a value
-- custom_attribute    a custom attribute name: records with a value (values are never stored),
--                     and defined attributes without values (count 0)
-- email_domain_class  internal | freemail | corporate | missing
-- email_domain        a domain; fewer than k_min_domain contacts fold into "(rare)" (suppressed)
--                     unless internal or free-mail
-- country             location country, "(unknown)" when absent
--
-- status: custom attributes: fail if sensitive-looking and not approved, review if not approved,
--         pass if approved; email_domain_class internal: review above internal_contact_max_pct;
--         other rows info.

create table if not exists evidence.evidence_personal_data_inventory (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    object_type varchar not null,
    dimension varchar not null,
    dimension_value varchar not null,
    data_category varchar,           -- identifier | contact | location | activity | marketing_status | relationship | custom
    is_custom boolean,
    count bigint,
    population bigint,
    pct double,
    suppressed boolean,
    sensitive_suspected boolean,
    approved boolean,
    attribute_label varchar,
    attribute_data_type varchar,
    created_by_admin_id varchar
);
create view if not exists evidence.latest_evidence_personal_data_inventory as
select * from evidence.evidence_personal_data_inventory
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_personal_data_inventory);

delete from evidence.evidence_personal_data_inventory where run_id = (select run_id from evidence_params);

insert into evidence.evidence_personal_data_inventory by name
with p as (select * from evidence_params),
contacts as (
    select *, workspace_id as ws, 'contact_' || coalesce(lower(role), 'unknown') as object_type, lower(email_domain) as domain
    from raw_contacts
),
populations as (
    select ws, object_type, count(*) as population from contacts group by all
    union all
    select workspace_id, 'conversation', count(*) from raw_conversations group by all
),
standard as (
    unpivot (
        select ws, object_type,
               count(email_hmac) as email, count(phone_hmac) as phone, count(external_id_hmac) as external_id,
               count(*) filter (where has_name) as name, count(country) as country,
               count(signed_up_at) as signed_up_at, count(last_seen_at) as last_seen_at,
               count(*) filter (where len(tag_ids) > 0) as tags, count(*) filter (where len(company_ids) > 0) as companies,
               count(*) filter (where unsubscribed_from_emails is not null) as unsubscribed_from_emails
        from contacts group by all
    ) on email, phone, external_id, name, country, signed_up_at, last_seen_at, tags, companies, unsubscribed_from_emails
    into name dimension_value value count
),
attribute_definitions as (
    select workspace_id as ws, case when model in ('conversation', 'company') then model else 'contact' end as model,
           name, label, data_type, admin_id
    from raw_data_attributes
    where _dlt_valid_to is null and custom and not coalesce(archived, false)
),
custom_used as (
    select ws, object_type, key as dimension_value, count(*) as count
    from (select ws, object_type, unnest(custom_attribute_keys) as key from contacts)
    group by all
    union all
    select ws, 'conversation', key, count(*)
    from (select workspace_id as ws, unnest(custom_attribute_keys) as key from raw_conversations)
    group by all
),
custom_defined_unused as (
    -- a defined attribute holds no value yet: still inventoried, so a sensitive one is caught early
    select d.ws, case when d.model in ('conversation', 'company') then d.model else 'contact_user' end as object_type,
           d.name as dimension_value, 0::bigint as count
    from attribute_definitions d
    where not exists (select 1 from custom_used u
                      where u.ws = d.ws and u.dimension_value = d.name
                        and (u.object_type = 'conversation') = (d.model = 'conversation'))
),
custom as (
    select c.*, d.label, d.data_type, d.admin_id
    from (select * from custom_used union all select * from custom_defined_unused) c
    left join attribute_definitions d on d.ws = c.ws and d.name = c.dimension_value
        and (d.model = 'conversation') = (c.object_type = 'conversation')
),
domain_classes as (
    select ws, object_type,
           case when not coalesce(has_email, email_hmac is not null) or domain is null then 'missing'
                when is_internal_domain or list_contains(p.internal_domains, domain) then 'internal'
                when list_contains(p.freemail_domains, domain) then 'freemail'
                else 'corporate' end as dimension_value,
           domain
    from contacts cross join p
),
domains as (
    select ws, object_type, dimension_value as domain_class, domain, count(*) as count
    from domain_classes where domain is not null
    group by all
),
rows_out as (
    select ws, object_type, 'attribute' as dimension, dimension_value,
           case dimension_value
               when 'email' then 'contact' when 'phone' then 'contact' when 'external_id' then 'identifier'
               when 'name' then 'identifier' when 'country' then 'location' when 'tags' then 'relationship'
               when 'companies' then 'relationship' when 'unsubscribed_from_emails' then 'marketing_status'
               else 'activity' end as data_category,
           false as is_custom, count, false as suppressed, null::varchar as label, null::varchar as data_type,
           null::varchar as admin_id
    from standard
    union all
    select ws, object_type, 'custom_attribute', dimension_value, 'custom', true, count, false, label, data_type, admin_id
    from custom
    union all
    select ws, object_type, 'email_domain_class', dimension_value, 'contact', false, count(*), false, null, null, null
    from domain_classes group by all
    union all
    select d.ws, d.object_type, 'email_domain',
           case when d.count < p.k_min_domain and d.domain_class = 'corporate' then '(rare)' else d.domain end,
           'contact', false, sum(d.count), bool_or(d.count < p.k_min_domain and d.domain_class = 'corporate'), null, null, null
    from domains d cross join p
    group by all
    union all
    select ws, object_type, 'country', coalesce(country, '(unknown)'), 'location', false, count(*), false, null, null, null
    from contacts group by all
),
judged as (
    select o.*, pop.population, p.run_id, p.as_of, w.workspace_id, w.region,
           round(100.0 * o.count / nullif(pop.population, 0), 3) as pct_value,
           o.is_custom and regexp_matches(lower(o.dimension_value || ' ' || coalesce(o.label, '')),
               '(ssn|social.?sec|passport|national.?id|tax.?id|iban|card|cvv|birth|dob|health|diagnos|relig|ethnic|politic|sexual|union|biometric|password|secret|token)')
               as sensitive,
           case when o.is_custom then list_contains(list_transform(p.approved_attributes, lambda a: lower(a)),
                                                   lower(o.dimension_value)) end as is_approved,
           p.internal_contact_max_pct
    from rows_out o
    cross join p
    left join populations pop on pop.ws = o.ws and pop.object_type = o.object_type
    join evidence_workspaces w on w.ws = o.ws
)
select
    run_id, as_of, workspace_id, region,
    case
        when is_custom and sensitive and not is_approved then 'fail'
        when is_custom and not is_approved then 'review'
        when is_custom then 'pass'
        when dimension = 'email_domain_class' and dimension_value = 'internal' and pct_value > internal_contact_max_pct
            then 'review'
        else 'info'
    end as status,
    list_filter([
        case when is_custom and sensitive then 'name or label suggests sensitive data' end,
        case when is_custom and not is_approved then 'custom attribute not on the approved list' end,
        case when dimension = 'email_domain_class' and dimension_value = 'internal' and pct_value > internal_contact_max_pct
             then pct_value || '% of contacts on internal domains: test accounts in production?' end,
        case when suppressed then 'domains with fewer than k_min_domain contacts folded together' end
    ], lambda f: f is not null) as findings,
    object_type, dimension, dimension_value, data_category, is_custom, count,
    coalesce(population, 0) as population, coalesce(pct_value, 0.0) as pct, suppressed,
    coalesce(sensitive, false) as sensitive_suspected, is_approved as approved,
    label as attribute_label, data_type as attribute_data_type, admin_id as created_by_admin_id
from judged;
