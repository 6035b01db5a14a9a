-- Consent per customer and purpose: the latest grant or withdrawal recorded for any identifier
-- the customer holds. Privacy first: a withdrawal through a shared identifier (a family
-- mailbox) applies to every holder, a grant only when the identifier belongs to this customer
-- alone. No record means no consent.
-- @materialized: table
-- @tags: daily, privacy, profiles
-- @description: Latest consent state per customer and purpose, with the record behind it.
-- @grain: customer_id, purpose
-- @test: unique(customer_id, purpose)
-- @test: not_null(customer_id, purpose, status)
-- @test: accepted_values(status, 'granted', 'withdrawn')
with records as (
    select
        consent_id,
        purpose,
        channel,
        lower(trim(status)) as status,
        cast(recorded_at as timestamp) as recorded_at,
        source,
        email_canonical(subject_email) as email,
        phone_e164(subject_phone, 'US') as phone
    from consent_records
),
by_customer as (
    select r.*, ci.customer_id
    from records r
    join unify.customer_identifiers ci on ci.kind = 'email' and ci.value = r.email
    where r.status = 'withdrawn' or ci.customers = 1
    union all
    select r.*, ci.customer_id
    from records r
    join unify.customer_identifiers ci on ci.kind = 'phone' and ci.value = r.phone
    where r.status = 'withdrawn' or ci.customers = 1
),
latest as (
    select
        *,
        row_number() over (
            partition by customer_id, purpose
            order by recorded_at desc, case status when 'withdrawn' then 0 else 1 end, consent_id
        ) as recency
    from by_customer
)
select
    customer_id,
    purpose,
    status,
    status = 'granted' as granted,
    channel,
    recorded_at,
    source,
    consent_id
from latest
where recency = 1
