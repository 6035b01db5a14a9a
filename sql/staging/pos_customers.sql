-- Point-of-sale customers.
-- @materialized: table
-- @tags: daily, pos
-- @description: POS customers with cleaned identifiers.
-- @grain: pos_customer_id
-- @subject: record_key: 'pos_customers:' || pos_customer_id
-- @test: unique(pos_customer_id)
-- @test: not_null(pos_customer_id, country)
-- @test: accepted_values(country, 'US', 'GB', 'FR', 'DE')
select
    pos_customer_id,
    loyalty_number,
    trim(full_name) as full_name,
    nullif(lower(trim(email)), '') as email,
    nullif(regexp_replace(phone, '[^0-9+]', '', 'g'), '') as phone,
    nullif(upper(trim(postal_code)), '') as postal_code,
    country,
    home_store_id,
    created_at
from pos_customers
