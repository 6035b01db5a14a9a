-- Every record that names a person, from every system, in one standard shape: identity
-- resolution (the `[identity]` section of tessera.toml) matches these rows and writes
-- unify.record_customer, unify.match_pairs, unify.match_model, unify.customer_id_history,
-- unify.identity_guard_hits and unify.identity_stats beside this table.
--
-- Add a system by adding a branch to the union; every branch has the same columns, NULL where
-- the system does not know the value. `record_key` (`source:id`) must be unique.
-- @materialized: identity
-- @tags: daily, identity
-- @description: Person records from every source, identifiers standardised for matching.
-- @grain: record_key
-- @test: unique(record_key)
-- @test: not_null(record_key, source, record_id)
with crm as (
    select
        'crm_contacts' as source,
        contact_id as record_id,
        name_normalize(first_name) as first_name,
        name_normalize(last_name) as last_name,
        -- The name as the system writes it (case, accents), for people to read.
        nullif(trim(concat_ws(' ', trim(first_name), trim(last_name))), '') as display_name,
        email_canonical(email) as email,
        -- A national number is read in the contact's country, else in the countries we sell in.
        phone_e164(phone, country_code(country), 'US', 'GB', 'FR', 'DE') as phone,
        -- Whatever the country: a number typed nationally here and internationally elsewhere,
        -- or not valid for any country tried, is still compared on its digits.
        phone_key(phone) as phone_key,
        parse_date(birth_date) as birth_date,
        postal_code_normalize(postal_code, coalesce(country_code(country), 'US')) as postal_code,
        city_normalize(city) as city,
        country_code(country) as country,
        loyalty_number,
        cast(null as varchar) as web_user_id,
        cast(updated_at as timestamp) as updated_at
    from staging.contacts
),
pos as (
    select
        'pos_customers' as source,
        pos_customer_id as record_id,
        name_part(full_name, 'first') as first_name,
        name_part(full_name, 'last') as last_name,
        nullif(trim(full_name), '') as display_name,
        email_canonical(email) as email,
        phone_e164(phone, country) as phone,
        phone_key(phone) as phone_key,
        cast(null as date) as birth_date,
        postal_code_normalize(postal_code, country) as postal_code,
        cast(null as varchar) as city,
        country_code(country) as country,
        loyalty_number,
        cast(null as varchar) as web_user_id,
        cast(created_at as timestamp) as updated_at
    from staging.pos_customers
),
web as (
    -- A web account: the address it signed up (or last logged in) with, and the latest profile
    -- traits it sent. The site's country reads a national number and a postcode.
    select
        'web_users' as source,
        user_id as record_id,
        name_normalize(latest_value(first_name, event_ts)) as first_name,
        name_normalize(latest_value(last_name, event_ts)) as last_name,
        nullif(trim(concat_ws(' ', trim(latest_value(first_name, event_ts)),
            trim(latest_value(last_name, event_ts)))), '') as display_name,
        email_canonical(latest_value(email, event_ts)) as email,
        phone_e164(latest_value(phone, event_ts), coalesce(country_code(max(country)), 'US')) as phone,
        phone_key(latest_value(phone, event_ts)) as phone_key,
        cast(null as date) as birth_date,
        postal_code_normalize(
            latest_value(postal_code, event_ts), coalesce(country_code(max(country)), 'US')
        ) as postal_code,
        cast(null as varchar) as city,
        country_code(max(country)) as country,
        latest_value(loyalty_number, event_ts) as loyalty_number,
        user_id as web_user_id,
        cast(max(event_ts) as timestamp) as updated_at
    from staging.web_events
    where user_id is not null
    group by user_id
),
tickets as (
    select
        'support_tickets' as source,
        ticket_id as record_id,
        name_part(requester_name, 'first') as first_name,
        name_part(requester_name, 'last') as last_name,
        nullif(trim(requester_name), '') as display_name,
        email_canonical(email) as email,
        -- Tickets carry no country: a national number is read in the countries we sell in.
        phone_e164(phone, 'US', 'GB', 'FR', 'DE') as phone,
        phone_key(phone) as phone_key,
        cast(null as date) as birth_date,
        cast(null as varchar) as postal_code,
        cast(null as varchar) as city,
        cast(null as varchar) as country,
        loyalty_number,
        cast(null as varchar) as web_user_id,
        cast(created_at as timestamp) as updated_at
    from support_tickets
),
records as (
    select * from crm
    union all select * from pos
    union all select * from web
    union all select * from tickets
)
select
    source || ':' || record_id as record_key,
    source,
    record_id,
    first_name,
    nickname_root(first_name) as first_name_root,
    last_name,
    daitch_mokotoff(last_name) as last_name_sound,
    -- The full name, its parts in alphabetical order: first and last typed the other way
    -- round give the same key.
    case when first_name <= last_name then first_name || ' ' || last_name
        else last_name || ' ' || first_name end as name_key,
    display_name,
    email,
    phone,
    phone_key,
    birth_date,
    postal_code,
    city,
    country,
    -- A card number as printed: spaces, dashes and case as people type it do not count.
    nullif(regexp_replace(upper(loyalty_number), '[^A-Z0-9]', '', 'g'), '') as loyalty_number,
    web_user_id,
    updated_at
from records
