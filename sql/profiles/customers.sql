-- The golden record: one row per customer, each attribute taken from the record the
-- survivorship rules pick, with that record's key beside it (lineage). Field groups survive
-- together: first and last name come from one record, and so do postal code, city and country.
-- Values the identity guards set aside as junk (blocked values such as placeholder birth
-- dates) never survive. Change a rule by editing its ORDER BY below.
--
--   name     a record with both names, by source priority, then the most recent; the
--            display name is how those names are best written by the records spelling them
--            so (mixed case before all-caps, then source priority)
--   email    the most recent, then by source priority
--   phone    the most frequent, then the most recent
--   birth    the most frequent, then by source priority
--   address  the most complete (postal code and city), by source priority, then the most recent
--
-- Tracked: profiles.customers_history keeps every version of every golden record with
-- valid_from / valid_to (a slowly changing dimension, type 2), profiles.customers_changes
-- what each run added, changed or removed, and Delta's change data feed is on.
-- @materialized: tracked
-- @unique_key: customer_id
-- @tags: daily, profiles, identity
-- @description: Golden record per customer with per-attribute survivorship and lineage.
-- @grain: customer_id
-- @test: unique(customer_id)
-- @test: not_null(customer_id, records)
-- @test: relationships(customer_id, unify.record_customer.customer_id)
with blocked as (
    select subject, value from unify.identity_guard_hits where guard = 'blocked_value'
),
records as (
    select
        rc.customer_id,
        rc.customer_created_at,
        i.record_key,
        i.source,
        -- Source priority: lower wins.
        case i.source
            when 'crm_contacts' then 1
            when 'pos_customers' then 2
            when 'support_tickets' then 3
            else 4
        end as source_rank,
        i.first_name,
        i.last_name,
        i.display_name,
        -- How well a record writes the name for people: mixed case (1), all in one case (2).
        case when i.display_name = upper(i.display_name) or i.display_name = lower(i.display_name)
            then 2 else 1 end as display_rank,
        case when be.value is null then i.email end as email,
        case when bp.value is null then i.phone end as phone,
        case when bb.value is null then i.birth_date end as birth_date,
        i.postal_code,
        i.city,
        i.country,
        i.web_user_id,
        i.updated_at
    from unify.record_customer rc
    join unify.identity_records i on i.record_key = rc.record_key
    left join blocked be on be.subject = 'email' and be.value = i.email
    left join blocked bp on bp.subject = 'phone' and bp.value = i.phone
    left join blocked bb on bb.subject = 'birth_date' and bb.value = cast(i.birth_date as varchar)
),
votes as (
    select
        r.*,
        count(phone) over (partition by customer_id, phone) as phone_votes,
        count(birth_date) over (partition by customer_id, birth_date) as birth_votes
    from records r
),
ranked as (
    select
        v.*,
        row_number() over (
            partition by customer_id
            order by case when first_name is not null and last_name is not null then 0 else 1 end,
                source_rank, updated_at desc nulls last, record_key
        ) as name_rank,
        row_number() over (
            partition by customer_id
            order by case when email is null then 1 else 0 end,
                updated_at desc nulls last, source_rank, record_key
        ) as email_rank,
        row_number() over (
            partition by customer_id
            order by case when phone is null then 1 else 0 end,
                phone_votes desc, updated_at desc nulls last, record_key
        ) as phone_rank,
        row_number() over (
            partition by customer_id
            order by case when birth_date is null then 1 else 0 end,
                birth_votes desc, source_rank, record_key
        ) as birth_rank,
        row_number() over (
            partition by customer_id
            order by case when postal_code is null then 1 else 0 end
                    + case when city is null then 1 else 0 end
                    + case when country is null then 1 else 0 end,
                source_rank, updated_at desc nulls last, record_key
        ) as address_rank
    from votes v
),
-- The display name: among the records spelling the surviving names, the best written.
display as (
    select customer_id as display_customer_id, display_name as best_display_name,
        record_key as display_record_key
    from (
        select r.customer_id, r.display_name, r.record_key,
            row_number() over (
                partition by r.customer_id order by r.display_rank, r.name_rank
            ) as display_pick
        from ranked r
        join ranked w on w.customer_id = r.customer_id and w.name_rank = 1
        where r.display_name is not null
            and (r.first_name is not distinct from w.first_name)
            and (r.last_name is not distinct from w.last_name)
    ) picked
    where display_pick = 1
)
select
    customer_id,
    -- The earliest evidence of the customer: their oldest record (not the run that first
    -- resolved them; profiles.customer_360 also counts their first order).
    least(min(updated_at), min(customer_created_at)) as customer_since,
    max(case when name_rank = 1 then first_name end) as first_name,
    max(case when name_rank = 1 then last_name end) as last_name,
    max(case when name_rank = 1 and coalesce(first_name, last_name) is not null then record_key end)
        as name_record_key,
    max(d.best_display_name) as display_name,
    max(d.display_record_key) as display_name_record_key,
    max(case when email_rank = 1 then email end) as email,
    max(case when email_rank = 1 and email is not null then record_key end) as email_record_key,
    max(case when phone_rank = 1 then phone end) as phone,
    max(case when phone_rank = 1 and phone is not null then record_key end) as phone_record_key,
    max(case when birth_rank = 1 then birth_date end) as birth_date,
    max(case when birth_rank = 1 and birth_date is not null then record_key end)
        as birth_date_record_key,
    max(case when address_rank = 1 then postal_code end) as postal_code,
    max(case when address_rank = 1 then city end) as city,
    coalesce(max(case when address_rank = 1 then country end), most_frequent(country)) as country,
    max(case when address_rank = 1 and coalesce(postal_code, city, country) is not null then record_key end)
        as address_record_key,
    count(*) as records,
    distinct_values(source) as sources,
    distinct_values(web_user_id) as web_user_ids,
    min(updated_at) as first_seen_at,
    max(updated_at) as last_seen_at
from ranked
left join display d on d.display_customer_id = ranked.customer_id
group by customer_id
