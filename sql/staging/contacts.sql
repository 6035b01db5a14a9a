-- CRM contacts, trimmed and lower-cased where case carries no meaning.
-- @materialized: table
-- @tags: daily, crm
-- @description: CRM contacts with cleaned identifiers.
-- @grain: contact_id
-- @subject: record_key: 'crm_contacts:' || contact_id
-- @test: unique(contact_id)
-- @test: not_null(contact_id)
select
    contact_id,
    nullif(trim(first_name), '') as first_name,
    nullif(trim(last_name), '') as last_name,
    nullif(lower(trim(email)), '') as email,
    nullif(regexp_replace(phone, '[^0-9+]', '', 'g'), '') as phone,
    nullif(trim(loyalty_number), '') as loyalty_number,
    nullif(trim(birth_date), '') as birth_date,
    nullif(trim(city), '') as city,
    nullif(upper(trim(postal_code)), '') as postal_code,
    upper(trim(country)) as country,
    created_at,
    updated_at
from crm_contacts
