-- Purchase behaviour per POS customer.
-- @materialized: table
-- @tags: daily, profiles
-- @description: Orders, revenue and first/last purchase per POS customer.
-- @grain: pos_customer_id
-- @subject: record_key: 'pos_customers:' || pos_customer_id
-- @test: unique(pos_customer_id)
-- @test: relationships(pos_customer_id, staging.pos_customers.pos_customer_id)
-- @test: row_count(min = 1)
with per_customer as (
    select
        pos_customer_id,
        count(*) as orders,
        sum(amount) as revenue,
        min(order_ts) as first_order_at,
        max(order_ts) as last_order_at,
        count(distinct channel) as channels
    from staging.orders
    group by pos_customer_id
)
select
    c.pos_customer_id,
    c.country,
    coalesce(p.orders, 0) as orders,
    coalesce(p.revenue, 0) as revenue,
    p.first_order_at,
    p.last_order_at,
    coalesce(p.channels, 0) as channels
from staging.pos_customers c
left join per_customer p on p.pos_customer_id = c.pos_customer_id
