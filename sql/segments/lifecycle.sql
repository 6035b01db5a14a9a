-- Lifecycle stage: an exclusive, prioritised segment list — each customer lands in the first
-- stage whose predicate holds, so the stages partition the customers. Reorder the WHEN
-- branches to change priorities. Tracked like every segment table (changes and history).
-- @materialized: tracked
-- @unique_key: customer_id
-- @tags: daily, segments
-- @description: One lifecycle stage per customer (first matching rule wins).
-- @grain: customer_id
-- @test: unique(customer_id)
-- @test: not_null(customer_id, stage)
-- @test: accepted_values(stage, 'vip', 'active', 'new', 'at_risk', 'lapsed', 'prospect')
select
    c.customer_id,
    case
        when r.rfm_segment in ('champions', 'cannot_lose_them') then 'vip'
        when c.orders > 0 and c.days_since_last_order <= 90 and c.orders = 1 then 'new'
        when c.orders > 0 and c.days_since_last_order <= 90 then 'active'
        when c.orders > 0 and c.days_since_last_order <= 365 then 'at_risk'
        when c.orders > 0 then 'lapsed'
        else 'prospect'
    end as stage
from profiles.customer_360 c
left join scores.rfm r on r.customer_id = c.customer_id
