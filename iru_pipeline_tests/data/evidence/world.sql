-- A small hand-made Intercom world in the exact raw schema dlt writes (schema `intercom`),
-- for the evidence tests. Times are relative to now(); list fields are JSON, as dlt stores them.
--
-- US workspace us01 (America/Los_Angeles), everything collected:
--   admins  1 owner   owner@acme.test   Owner, in HR, logs in with SSO                     -> pass-ish (privileged)
--           2 sam     sam@acme.test     last login 140 days ago                           -> stale
--           3 nina    nina@acme.test    invited 10 days ago, never active                 -> unused
--           4 support support@acme.test Admin, not in HR, logins from 4 IPs               -> unmatched, shared
--           5 tom     tom@acme.test     HR terminated 45 days ago, logged in 6 days ago   -> terminated
--           6 val     val@partner.test  external, approved exception                      -> approved_exception
--   removed 7 gary    terminated 52 d ago, admin_deletion event 12 h later              -> offboarding pass
--           8 lisa    terminated 40 d ago, snapshot removal 10 days later               -> offboarding fail
--   events  night export 03:00 local, office-hours export, 6 login failures in 40 min, message
--           deletion, impersonation without consent, change by a terminated person, unknown actor
--   conversations  c1 past retention, DSAR answered 40 days after creation, security answered in 2 h
--   contacts  one user and one lead past retention; custom attributes plan (approved) and passport_number
-- EU workspace eu01 (Europe/Dublin): activity logs not collected (plan restricted), identity
-- verification off, one DSAR answered in 5 days.

set TimeZone = 'UTC';
create or replace temp macro ago(d) as now() - to_days(d::integer);
create or replace temp macro ago_h(h) as now() - to_hours(h::integer);
create or replace temp macro at_local(days_ago, hh, mm, tz) as
    timezone(tz, (current_date - days_ago::integer)::timestamp + to_hours(hh::integer) + to_minutes(mm::integer));

create schema intercom;

create table intercom.workspaces (region varchar, workspace_id varchar, id varchar, name varchar, reported_region varchar,
    timezone varchar, identity_verification boolean, secure boolean, created_at timestamptz, api_host varchar,
    api_version varchar, token_admin_id varchar, _dlt_valid_from timestamptz, _dlt_valid_to timestamptz,
    _dlt_load_id varchar, _dlt_id varchar);
insert into intercom.workspaces values
    ('us', 'us01', 'us01', 'Acme (US)', 'US', 'America/Los_Angeles', true, true, ago(2000), 'api.intercom.io', '2.16', '1', ago(300), null, 'l1', 'w1'),
    ('eu', 'eu01', 'eu01', 'Acme (EU)', 'EU', 'Europe/Dublin', false, true, ago(1500), 'api.eu.intercom.io', '2.16', 'e1', ago(300), null, 'l1', 'w2');

create table intercom.admins (region varchar, workspace_id varchar, id varchar, name varchar, email varchar, job_title varchar,
    away_mode_enabled boolean, away_mode_reassign boolean, away_status_reason_id varchar, has_inbox_seat boolean,
    team_ids json, role_id varchar, role_name varchar, primary_team_ids json, secondary_team_ids json,
    _dlt_valid_from timestamptz, _dlt_valid_to timestamptz, _dlt_load_id varchar, _dlt_id varchar);
insert into intercom.admins values
    ('us', 'us01', '1', 'Owner One', 'owner@acme.test', 'Head of Support', false, false, null, true, '["t1","t2"]', '1001', 'Owner', '["t1"]', '["t2"]', ago(300), null, 'l1', 'a1'),
    ('us', 'us01', '2', 'Stale Sam', 'sam@acme.test', 'Sales', false, false, null, true, '["t1"]', null, null, '[]', '[]', ago(300), null, 'l1', 'a2'),
    ('us', 'us01', '3', 'New Nina', 'nina@acme.test', 'Support', false, false, null, true, '[]', '1003', 'Support agent', '[]', '[]', ago(9), null, 'l2', 'a3'),
    ('us', 'us01', '4', 'Support Team', 'support@acme.test', '', false, false, null, true, '["t2"]', '1002', 'Admin', '[]', '[]', ago(300), null, 'l1', 'a4'),
    ('us', 'us01', '5', 'Terminated Tom', 'tom@acme.test', 'Billing', false, false, null, true, '[]', null, null, '[]', '[]', ago(300), null, 'l1', 'a5'),
    ('us', 'us01', '6', 'Vendor Val', 'val@partner.test', 'Contractor', false, false, null, true, '[]', null, null, '[]', '[]', ago(300), null, 'l1', 'a6'),
    ('us', 'us01', '7', 'Gone Gary', 'gary@acme.test', 'Support', false, false, null, true, '[]', null, null, '[]', '[]', ago(300), ago(50), 'l1', 'a7'),
    ('us', 'us01', '8', 'Late Lisa', 'lisa@acme.test', 'Support', false, false, null, true, '[]', null, null, '[]', '[]', ago(300), ago(30), 'l1', 'a8'),
    ('eu', 'eu01', 'e1', 'Owner One', 'owner@acme.test', 'Head of Support', false, false, null, true, '[]', '1001', 'Owner', '[]', '[]', ago(300), null, 'l1', 'a9'),
    ('eu', 'eu01', 'e2', 'Eva Euro', 'eva@acme.test', 'Support', false, false, null, true, '[]', null, null, '[]', '[]', ago(300), null, 'l1', 'a10');

create table intercom.teams (region varchar, workspace_id varchar, id varchar, name varchar, admin_ids json,
    assignment_limit bigint, distribution_method varchar, _dlt_valid_from timestamptz, _dlt_valid_to timestamptz);
insert into intercom.teams values
    ('us', 'us01', 't1', 'Support', '["1","2"]', null, null, ago(300), null),
    ('us', 'us01', 't2', 'Security', '["1","4"]', null, null, ago(300), null);

create table intercom.team_memberships (region varchar, workspace_id varchar, id varchar, team_id varchar, admin_id varchar,
    team_name varchar, _dlt_valid_from timestamptz, _dlt_valid_to timestamptz);
insert into intercom.team_memberships values
    ('us', 'us01', 't1:1', 't1', '1', 'Support', ago(300), null), ('us', 'us01', 't1:2', 't1', '2', 'Support', ago(300), null),
    ('us', 'us01', 't2:1', 't2', '1', 'Security', ago(300), null), ('us', 'us01', 't2:4', 't2', '4', 'Security', ago(300), null);

create table intercom.tags (region varchar, workspace_id varchar, id varchar, name varchar,
    _dlt_valid_from timestamptz, _dlt_valid_to timestamptz);
insert into intercom.tags values ('us', 'us01', 'g1', 'dsar', ago(300), null), ('us', 'us01', 'g2', 'Security', ago(300), null);

create table intercom.data_attributes (region varchar, workspace_id varchar, id varchar, attribute_id varchar, model varchar,
    name varchar, full_name varchar, label varchar, data_type varchar, custom boolean, archived boolean,
    api_writable boolean, ui_writable boolean, messenger_writable boolean, created_at timestamptz, updated_at timestamptz,
    admin_id varchar, _dlt_valid_from timestamptz, _dlt_valid_to timestamptz);
insert into intercom.data_attributes values
    ('us', 'us01', 'contact:email', null, 'contact', 'email', 'email', 'Email', 'string', false, false, true, false, true, null, null, null, ago(300), null),
    ('us', 'us01', 'contact:custom_attributes.plan', '11', 'contact', 'plan', 'custom_attributes.plan', 'Plan', 'string', true, false, true, true, false, ago(900), ago(900), '1', ago(300), null),
    ('us', 'us01', 'contact:custom_attributes.passport_number', '12', 'contact', 'passport_number', 'custom_attributes.passport_number', 'Passport', 'string', true, false, true, true, false, ago(100), ago(100), '4', ago(300), null),
    ('us', 'us01', 'contact:custom_attributes.shoe_size', '13', 'contact', 'shoe_size', 'custom_attributes.shoe_size', 'Shoe size', 'integer', true, false, true, true, false, ago(100), ago(100), '1', ago(300), null),
    ('us', 'us01', 'conversation:Issue type', '1', 'conversation', 'Issue type', null, null, 'list', true, false, null, null, null, ago(900), ago(900), '1', ago(300), null);

create table intercom.contacts (region varchar, workspace_id varchar, id varchar, role varchar, email_hmac varchar,
    phone_hmac varchar, external_id_hmac varchar, email_domain varchar, has_email boolean, is_internal_domain boolean,
    email_has_plus_tag boolean, email_looks_test boolean, has_name boolean, has_phone boolean, owner_id varchar,
    country varchar, country_code varchar, has_hard_bounced boolean, marked_email_as_spam boolean,
    unsubscribed_from_emails boolean, tag_ids json, tags_truncated boolean, company_ids json, custom_attribute_keys json,
    deleted_at timestamptz, created_at timestamptz, updated_at timestamptz, signed_up_at timestamptz,
    last_seen_at timestamptz, last_replied_at timestamptz, last_contacted_at timestamptz,
    last_email_opened_at timestamptz, last_email_clicked_at timestamptz);
insert into intercom.contacts
select 'us', 'us01', 'u' || i, 'user', md5('u' || i), null, null,
       case when i <= 3 then 'gmail.com' when i = 4 then 'acme.test' when i = 10 then 'tiny.test' else 'bigcorp.test' end,
       true, i = 4, false, false, true, false, null, 'Germany', 'DE', false, false, false, '[]', false, '[]',
       case when i = 1 then '["plan","passport_number"]' when i = 2 then '["plan"]' else '[]' end,
       null, ago(1000), ago(5), ago(1000), case when i = 5 then ago(800) else ago(i) end, null, null, null, null
from range(1, 11) r(i);
insert into intercom.contacts values
    ('us', 'us01', 'l1', 'lead', null, null, null, null, false, false, false, false, false, false, null, null, null, null, null, null, '[]', false, '[]', '[]', null, ago(500), ago(400), null, ago(400), null, null, null, null),
    ('us', 'us01', 'l2', 'lead', null, null, null, null, false, false, false, false, false, false, null, 'France', 'FR', null, null, null, '[]', false, '[]', '[]', null, ago(20), ago(20), null, ago(20), null, null, null, null),
    ('eu', 'eu01', 'x1', 'user', 'h1', null, null, 'acme.test', true, true, false, false, true, false, null, 'Ireland', 'IE', null, null, null, '[]', false, '[]', '[]', null, ago(50), ago(5), ago(50), ago(5), null, null, null, null),
    ('eu', 'eu01', 'x2', 'user', 'h2', null, null, 'gmail.com', true, false, false, false, true, false, null, 'Ireland', 'IE', null, null, null, '[]', false, '[]', '[]', null, ago(50), ago(5), ago(50), ago(5), null, null, null, null);

create table intercom.conversations (region varchar, workspace_id varchar, id varchar, created_at timestamptz, updated_at timestamptz,
    waiting_since timestamptz, snoozed_until timestamptz, state varchar, open boolean, read boolean, priority varchar,
    admin_assignee_id varchar, team_assignee_id varchar, tag_ids json, tag_names json, contact_ids json, teammate_ids json,
    company_id varchar, source_type varchar, source_delivered_as varchar, source_author_type varchar, source_author_id varchar,
    channel_initial varchar, channel_current varchar, sla_name varchar, sla_status varchar, rating_score bigint,
    rating_created_at timestamptz, rating_teammate_id varchar, ai_agent_participated boolean,
    ai_agent_resolution_state varchar, ai_agent_last_answer_type varchar, ai_agent_source_type varchar,
    ai_agent_rating bigint, custom_attribute_keys json, first_contact_reply_at timestamptz, time_to_assignment bigint,
    time_to_admin_reply bigint, time_to_first_close bigint, time_to_last_close bigint, median_time_to_reply bigint,
    first_admin_reply_at timestamptz, first_assignment_at timestamptz, first_close_at timestamptz,
    last_close_at timestamptz, last_admin_reply_at timestamptz, last_contact_reply_at timestamptz,
    last_closed_by_id varchar, count_reopens bigint, count_assignments bigint,
    count_conversation_parts bigint, deleted_at timestamptz);
insert into intercom.conversations (region, workspace_id, id, created_at, updated_at, state, open, team_assignee_id,
    tag_names, source_author_type, custom_attribute_keys, time_to_admin_reply, time_to_first_close,
    first_admin_reply_at, first_close_at, last_close_at) values
    ('us', 'us01', 'c1', ago(900), ago(850), 'closed', false, 't1', '[]', 'user', '["Issue type"]', 3600, 86400, ago(900) + interval 1 hour, ago(899), ago(850)),
    ('us', 'us01', 'c2', ago(100), ago(99), 'closed', false, 't1', '[]', 'user', '[]', 600, 86400, ago(100) + interval 10 minute, ago(99), ago(99)),
    ('us', 'us01', 'c3', ago(75), ago(30), 'closed', false, 't1', '["dsar"]', 'admin', '[]', 40 * 86400, 45 * 86400, ago(35), ago(30), ago(30)),
    ('us', 'us01', 'c4', ago(33), ago(32), 'closed', false, 't2', '["Security"]', 'lead', '[]', 7200, 86400, ago(33) + interval 2 hour, ago(32), ago(32)),
    ('us', 'us01', 'c5', ago(10), ago(10), 'open', true, null, '[]', 'user', '[]', null, null, null, null, null),
    ('eu', 'eu01', 'c7', ago(20), ago(15), 'closed', false, null, '["DSAR"]', 'user', '[]', 5 * 86400, 5 * 86400, ago(15), ago(15), ago(15));

create table intercom.deleted_conversations (region varchar, workspace_id varchar, id varchar, deleted_at timestamptz,
    metrics_retained boolean);
insert into intercom.deleted_conversations values ('us', 'us01', 'c0', ago(40), false);

create table intercom.activity_logs (region varchar, workspace_id varchar, id varchar, created_at timestamptz,
    activity_type varchar, performed_by_type varchar, performed_by_id varchar, performed_by_email varchar,
    performed_by_ip varchar, activity_description varchar, metadata json);
insert into intercom.activity_logs values
    ('us', 'us01', 'ev-owner-login', at_local(2, 9, 0, 'America/Los_Angeles'), 'admin_login_success', 'admin', '1', 'owner@acme.test', '10.0.0.1', 'Owner One logged in.', '{"sign_in_method":"saml_sso"}'),
    ('us', 'us01', 'ev-sam-login', ago(140), 'admin_login_success', 'admin', '2', 'sam@acme.test', '10.0.0.2', 'Stale Sam logged in.', '{"sign_in_method":"email_password"}'),
    ('us', 'us01', 'ev-nina-invite', ago(10), 'admin_invite_creation', 'admin', '1', 'owner@acme.test', '10.0.0.1', 'Owner One invited nina@acme.test.', '{}'),
    ('us', 'us01', 'ev-support-1', ago(3), 'admin_login_success', 'admin', '4', 'support@acme.test', '203.0.113.10', 'Support logged in.', '{"sign_in_method":"email_password"}'),
    ('us', 'us01', 'ev-support-2', ago(9), 'admin_login_success', 'admin', '4', 'support@acme.test', '198.51.100.23', 'Support logged in.', '{"sign_in_method":"email_password"}'),
    ('us', 'us01', 'ev-support-3', ago(15), 'admin_login_success', 'admin', '4', 'support@acme.test', '192.0.2.77', 'Support logged in.', '{"sign_in_method":"email_password"}'),
    ('us', 'us01', 'ev-support-4', ago(21), 'admin_login_success', 'admin', '4', 'support@acme.test', '2001:db8::42', 'Support logged in.', '{"sign_in_method":"email_password"}'),
    ('us', 'us01', 'ev-tom-login-before', ago(46), 'admin_login_success', 'admin', '5', 'tom@acme.test', '10.0.0.5', 'Tom logged in.', '{"sign_in_method":"google_sso"}'),
    ('us', 'us01', 'ev-tom-login-after', ago(6), 'admin_login_success', 'admin', '5', 'tom@acme.test', '10.0.0.5', 'Tom logged in.', '{"sign_in_method":"google_sso"}'),
    ('us', 'us01', 'ev-tom-seat-before', ago(50), 'seat_change', 'admin', '5', 'tom@acme.test', '10.0.0.5', 'Tom changed the seat of Sam.', '{}'),
    ('us', 'us01', 'ev-tom-role-change', ago(3), 'role_change', 'admin', '5', 'tom@acme.test', '10.0.0.5', 'Tom changed the role of Sam.', '{"before":"Support agent","after":"Admin"}'),
    ('us', 'us01', 'ev-val-login', ago(3), 'admin_login_success', 'admin', '6', 'val@partner.test', '10.0.0.6', 'Val logged in.', '{"sign_in_method":"email_password"}'),
    ('us', 'us01', 'ev-val-permission', ago(5), 'admin_permission_change', 'admin', '6', 'val@partner.test', '10.0.0.6', 'Val changed permissions for Nina.', '{}'),
    ('us', 'us01', 'ev-owner-permission', ago(4), 'admin_permission_change', 'admin', '1', 'owner@acme.test', '10.0.0.1', 'Owner changed permissions for Sam.', '{}'),
    ('us', 'us01', 'ev-val-authn', ago(7), 'app_authentication_method_change', 'admin', '6', 'val@partner.test', '10.0.0.6', 'Val changed authentication methods.', '{}'),
    ('us', 'us01', 'ev-owner-2fa-off', ago(8), 'admin_two_factor_auth_change', 'admin', '1', 'owner@acme.test', '10.0.0.1', 'Owner disabled two-factor authentication.', '{"enabled":false}'),
    ('us', 'us01', 'ev-night-export', at_local(12, 3, 0, 'America/Los_Angeles'), 'app_data_export', 'admin', '1', 'owner@acme.test', '10.0.0.1', 'Owner exported workspace data including <email:1a2b3c4d@gmail.com>.', '{}'),
    ('us', 'us01', 'ev-day-export', timezone('America/Los_Angeles', date_trunc('week', now() at time zone 'America/Los_Angeles') - interval 12 day + interval 10 hour), 'bulk_export', 'admin', '1', 'owner@acme.test', '10.0.0.1', 'Owner exported contacts.', '{}'),
    ('us', 'us01', 'ev-message-deletion', ago(20), 'message_deletion', 'admin', '1', 'owner@acme.test', '10.0.0.1', 'Owner deleted a message.', '{}'),
    ('us', 'us01', 'ev-impersonation-no-consent', ago(15), 'admin_impersonation_start', 'admin', '1', 'owner@acme.test', '10.0.0.1', 'Intercom support started impersonation.', '{}'),
    ('us', 'us01', 'ev-consent', ago(31), 'admin_impersonation_consent_approved', 'admin', '1', 'owner@acme.test', '10.0.0.1', 'Owner approved support access.', '{}'),
    ('us', 'us01', 'ev-impersonation-with-consent', ago(30), 'admin_impersonation_start', 'admin', '1', 'owner@acme.test', '10.0.0.1', 'Intercom support started impersonation.', '{}'),
    ('us', 'us01', 'ev-unknown-actor', ago(11), 'app_name_change', 'admin', '999', 'ghost@elsewhere.test', '10.9.9.9', 'Someone changed the app name.', '{}'),
    ('us', 'us01', 'ev-gary-deleted', (current_date - 52)::timestamptz + interval 12 hour, 'admin_deletion', 'admin', '1', 'owner@acme.test', '10.0.0.1', 'Owner One removed a teammate (gary@acme.test).', '{}');
insert into intercom.activity_logs
select 'us', 'us01', 'ev-failure-' || k, at_local(9, 14, 5, 'America/Los_Angeles') + to_minutes(8 * k), 'admin_login_failure', 'admin', '6',
       'val@partner.test', '185.220.101.47', 'Val failed to log in.', '{"sign_in_method":"email_password"}'
from range(6) r(k);

create table intercom.sync_results (run_id varchar, region varchar, resource varchar, status varchar, reason varchar,
    rows_loaded bigint, unchanged_rows_skipped bigint, rows_deleted bigint, pages bigint, cursor_before varchar,
    cursor_after varchar, window_start varchar, window_end varchar, api_host varchar, api_version varchar,
    api_calls bigint, api_retries bigint, api_429s bigint, api_5xx bigint, api_transport_errors bigint,
    lowest_ratelimit_remaining bigint, error_code varchar, http_status integer, request_id varchar,
    fields_dropped varchar[], reconciled boolean, started_at timestamptz, finished_at timestamptz, workspace varchar,
    workspace_id varchar);
insert into intercom.sync_results
select 'ing-us-1', 'us', resource, 'ok', null, 10, 0, 0, 1, null, null,
       case when resource = 'activity_logs' then strftime(ago(1095), '%Y-%m-%dT%H:%M:%S+00:00') end,
       case when resource = 'activity_logs' then strftime(ago_h(2), '%Y-%m-%dT%H:%M:%S+00:00') end,
       'api.intercom.io', '2.16', 2, case when resource = 'contacts' then 1 else 0 end,
       case when resource = 'contacts' then 1 else 0 end, 0, 0, 900, null, null, null,
       case when resource = 'contacts' then ['name', 'email'] else []::varchar[] end, null, ago_h(2), ago_h(1), 'us', 'us01'
from (values ('workspaces'), ('admins'), ('teams'), ('team_memberships'), ('tags'), ('data_attributes'), ('contacts'),
             ('conversations'), ('deleted_conversations'), ('activity_logs')) v(resource);
insert into intercom.sync_results
select 'ing-eu-1', 'eu', resource, case when resource = 'activity_logs' then 'skipped' else 'ok' end,
       case when resource = 'activity_logs' then 'admin activity logs are not available on this workspace''s Intercom plan' end,
       case when resource = 'activity_logs' then 0 else 5 end, 0, 0, 1, null, null, null, null,
       'api.eu.intercom.io', '2.16', 1, 0, 0, 0, 0, 950,
       case when resource = 'activity_logs' then 'api_plan_restricted' end,
       case when resource = 'activity_logs' then 403 end, case when resource = 'activity_logs' then 'req-123' end,
       []::varchar[], null, ago_h(2), ago_h(1), 'eu', 'eu01'
from (values ('workspaces'), ('admins'), ('teams'), ('team_memberships'), ('tags'), ('data_attributes'), ('contacts'),
             ('conversations'), ('deleted_conversations'), ('activity_logs')) v(resource);

-- Proof of collection (hashes only): us answered twice (ing-us-0 then ing-us-1: only the
-- latest collection is evidence), eu once with a refused /tags carrying Intercom's request id.
create table intercom.collection_proofs (run_id varchar, region varchar, endpoint varchar, resource varchar,
    received_at timestamptz, api_base_url varchar, http_status integer, request_id varchar, body_sha256 varchar,
    body_bytes bigint, workspace varchar, workspace_id varchar);
insert into intercom.collection_proofs values
    ('ing-us-0', 'us', 'GET /admins', 'admins', ago_h(30), 'https://api.intercom.io', 200, null, repeat('0', 64), 10, 'us', 'us01'),
    ('ing-us-1', 'us', 'GET /me', 'workspaces', ago_h(2), 'https://api.intercom.io', 200, 'rid-us-me', repeat('a', 64), 500, 'us', 'us01'),
    ('ing-us-1', 'us', 'GET /admins', 'admins', ago_h(2), 'https://api.intercom.io', 200, null, repeat('b', 64), 4000, 'us', 'us01'),
    ('ing-eu-1', 'eu', 'GET /me', 'workspaces', ago_h(2), 'https://api.eu.intercom.io', 200, null, repeat('c', 64), 450, 'eu', 'eu01'),
    ('ing-eu-1', 'eu', 'GET /tags', 'tags', ago_h(2), 'https://api.eu.intercom.io', 403, 'req-456', repeat('d', 64), 120, 'eu', 'eu01');
