-- Every standardised identifier (email, phone, web user id) with the customers that hold it.
-- Behaviour keyed by an identifier (email engagement, consent, web logins) reaches customers
-- through this table; `customers > 1` marks a shared value (a family mailbox, a landline).
-- @materialized: table
-- @tags: daily, identity
-- @description: Identifier → customer map from the identity graph, with how many customers share each value.
-- @grain: kind, value, customer_id
-- @test: not_null(kind, value, customer_id)
-- @test: accepted_values(kind, 'email', 'phone', 'web_user_id')
with held as (
    select 'email' as kind, i.email as value, rc.customer_id
    from unify.identity_records i join unify.record_customer rc on rc.record_key = i.record_key
    where i.email is not null
    union all
    select 'phone', i.phone, rc.customer_id
    from unify.identity_records i join unify.record_customer rc on rc.record_key = i.record_key
    where i.phone is not null
    union all
    select 'web_user_id', i.web_user_id, rc.customer_id
    from unify.identity_records i join unify.record_customer rc on rc.record_key = i.record_key
    where i.web_user_id is not null
),
per_customer as (
    select kind, value, customer_id, count(*) as records
    from held
    group by kind, value, customer_id
)
select
    kind,
    value,
    customer_id,
    records,
    cast(count(*) over (partition by kind, value) as bigint) as customers
from per_customer
