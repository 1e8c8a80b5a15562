-- evidence_workspace_security_config: one row per workspace and security setting (long format,
-- docs/evidence.md#tables). Values are text so every setting fits one column.
--
-- data_region                       app.region from /me, against allowed_regions            pass | fail
-- data_region_matches_configured    app.region against the region the token was set for     pass | fail
-- api_host_region_consistent        the host that answered against the region's official    pass | fail | review
--                                   host: fail if it is another region's Intercom host;
--                                   review if it is no Intercom API host at all (a proxy, the
--                                   bundled fake, loopback), which cannot confirm the region
-- identity_verification             /me identity_verification, expected true; review if it was
--                                   switched off during the period                          pass | fail | review
-- authentication_method_changes     app_authentication_method_change, security_settings_change,
--                                   app_google_sso_domain_change in the period; review unless
--                                   the last one was made by an authorised actor            info | review
-- two_factor_changes                admin_two_factor_auth_change in the period; review if any
--                                   disabled two-factor authentication                     info | review
-- sso_login_share_pct               share of logins in the period whose sign-in method is SSO  pass | info
-- mfa_enforcement                   not exposed by the API: a screenshot is needed           manual
-- integrations_changed_in_period    app packages, webhooks, messenger secrets, tokens       info
-- vendor_impersonation_sessions     admin_impersonation_start in the period                  info
-- workspace_timezone, workspace_created_at                                                  info

create table if not exists evidence.evidence_workspace_security_config (
    run_id varchar not null,
    as_of timestamptz not null,
    workspace_id varchar,
    region varchar not null,
    status varchar not null,
    findings varchar[],
    setting_key varchar not null,
    observed_value varchar,
    expected_value varchar,
    source varchar,
    changes_in_period bigint,
    last_changed_at timestamptz,
    last_changed_by varchar
);
create view if not exists evidence.latest_evidence_workspace_security_config as
select * from evidence.evidence_workspace_security_config
where run_id = (select arg_max(run_id, as_of) from evidence.evidence_workspace_security_config);

delete from evidence.evidence_workspace_security_config where run_id = (select run_id from evidence_params);

insert into evidence.evidence_workspace_security_config by name
with p as (select * from evidence_params),
wsp as (
    select r.*, c.reported_region as configured_reported_region, c.official_host,
           coalesce(r.api_host, l.api_host) as host
    from evidence_workspaces r
    left join region_catalog c using (region)
    left join latest_sync l on l.ws = r.ws and l.resource = 'workspaces'
),
period_events as (
    select l.*, coalesce(list_contains(p.access_managers, l.actor_email), false)
             or (len(p.access_managers) = 0 and coalesce(list_contains(
                    list_transform(p.privileged_role_names, lambda r: lower(r)), lower(a.role_name)), false)) as authorised
    from activity l cross join p
    left join admin_latest a on a.ws = l.ws and a.admin_id = l.performed_by_id
    where l.created_at between p.period_start and p.period_end
),
changes as (
    select ws, kind, count(*) as n,
           max(created_at) as last_at,
           arg_max(performed_by_email, created_at) as last_by,
           arg_max(authorised, created_at) as last_by_authorised,
           count(*) filter (where metadata ->> 'enabled' = 'false') as disabled
    from (
        select *, case
            when activity_type in ('app_authentication_method_change', 'security_settings_change',
                                   'app_google_sso_domain_change') then 'authentication_method_changes'
            when activity_type = 'admin_two_factor_auth_change' then 'two_factor_changes'
            when activity_type = 'app_identity_verification_change' then 'identity_verification'
            when activity_type in ('app_package_installation', 'app_package_uninstallation',
                                   'app_package_token_regeneration', 'app_webhook_creation', 'app_webhook_deletion',
                                   'messenger_api_secret_creation', 'messenger_api_secret_deletion',
                                   'custom_authentication_token_creation') then 'integrations_changed_in_period'
            when activity_type = 'admin_impersonation_start' then 'vendor_impersonation_sessions'
        end as kind
        from period_events
    )
    where kind is not null
    group by all
),
logins as (
    select ws, count(*) as n,
           count(*) filter (where metadata ->> 'sign_in_method' ilike '%sso%'
                               or metadata ->> 'sign_in_method' ilike '%saml%') as sso
    from period_events
    where activity_type = 'admin_login_success'
    group by all
),
settings as (
    select ws, region, 'data_region' as setting_key, reported_region as observed_value,
           array_to_string(p.allowed_regions, ', ') as expected_value, 'GET /me' as source,
           case when reported_region is null then 'unknown'
                when list_contains(p.allowed_regions, upper(reported_region)) then 'pass' else 'fail' end as status,
           case when reported_region is not null and not list_contains(p.allowed_regions, upper(reported_region))
                then ['region ' || reported_region || ' is not in allowed_regions'] end as findings
    from wsp cross join p
    union all
    select ws, region, 'data_region_matches_configured', reported_region, configured_reported_region, 'GET /me',
           case when reported_region is null then 'unknown'
                when upper(reported_region) = configured_reported_region then 'pass' else 'fail' end,
           case when upper(reported_region) <> configured_reported_region
                then ['token configured for ' || upper(region) || ' answers for a ' || reported_region || ' workspace'] end
    from wsp
    union all
    select ws, region, 'api_host_region_consistent', host, official_host, 'collector',
           case when host is null then 'unknown'
                when host = official_host then 'pass'
                when list_contains(h.intercom_hosts, host) then 'fail'
                else 'review' end,
           case when host is not null and host <> official_host and list_contains(h.intercom_hosts, host)
                     then ['data served by ' || host || ', not the ' || upper(region) || ' host']
                when host is not null and host <> official_host
                     then [host || ' is not an Intercom API host (' || array_to_string(h.intercom_hosts, ', ')
                           || '): a proxy, a fake or loopback; it cannot confirm the data region'] end
    from wsp
    cross join (select list(official_host order by official_host) as intercom_hosts from region_catalog) h
    union all
    select wsp.ws, wsp.region, 'identity_verification', identity_verification::varchar, 'true', 'GET /me',
           case when identity_verification is null then 'unknown'
                when not identity_verification then 'fail'
                when c.disabled > 0 then 'review' else 'pass' end,
           list_filter([
               case when identity_verification = false then 'messenger identity verification is off' end,
               case when c.disabled > 0 then 'identity verification was switched off during the period' end
           ], lambda f: f is not null)
    from wsp left join changes c on c.ws = wsp.ws and c.kind = 'identity_verification'
    union all
    select wsp.ws, wsp.region, 'authentication_method_changes', coalesce(c.n, 0)::varchar, null, 'activity_logs',
           case when c.n > 0 and not c.last_by_authorised then 'review' else 'info' end,
           case when c.n > 0 and not c.last_by_authorised
                then ['last change made by an actor who is not an access manager'] end
    from wsp left join changes c on c.ws = wsp.ws and c.kind = 'authentication_method_changes'
    union all
    select wsp.ws, wsp.region, 'two_factor_changes',
           coalesce(c.n, 0) || ' changes, ' || coalesce(c.disabled, 0) || ' disabling two-factor', null, 'activity_logs',
           case when c.disabled > 0 then 'review' else 'info' end,
           case when c.disabled > 0 then [c.disabled || ' change(s) disabled two-factor authentication'] end
    from wsp left join changes c on c.ws = wsp.ws and c.kind = 'two_factor_changes'
    union all
    select wsp.ws, wsp.region, 'sso_login_share_pct',
           case when g.n > 0 then round(100.0 * g.sso / g.n, 1)::varchar end, '100', 'activity_logs',
           case when g.n > 0 and g.sso = g.n then 'pass' else 'info' end,
           case when g.n > 0 and g.sso < g.n then [(g.n - g.sso) || ' of ' || g.n || ' logins did not use SSO'] end
    from wsp left join logins g on g.ws = wsp.ws
    union all
    select ws, region, 'mfa_enforcement', null, 'enforced', 'manual', 'manual',
           ['not exposed by the Intercom API: attach a Settings > Security screenshot showing the URL and the date']
    from wsp
    union all
    select wsp.ws, wsp.region, c2.kind, coalesce(c.n, 0)::varchar, null, 'activity_logs', 'info', null
    from wsp
    cross join (values ('integrations_changed_in_period'), ('vendor_impersonation_sessions')) c2(kind)
    left join changes c on c.ws = wsp.ws and c.kind = c2.kind
    union all
    select ws, region, 'workspace_timezone', timezone, null, 'GET /me', 'info', null from wsp
    union all
    select ws, region, 'workspace_created_at', strftime(workspace_created_at, '%Y-%m-%dT%H:%M:%SZ'), null, 'GET /me', 'info', null
    from wsp
)
select p.run_id, p.as_of, wsp.workspace_id, s.region, s.status, coalesce(s.findings, []::varchar[]) as findings,
       s.setting_key, s.observed_value, s.expected_value, s.source,
       c.n as changes_in_period, c.last_at as last_changed_at, c.last_by as last_changed_by
from settings s
cross join p
join wsp on wsp.ws = s.ws
left join changes c on c.ws = s.ws and c.kind = s.setting_key;
