-- Orders, merged in incrementally: each run reads only orders newer than the newest one stored.
-- @materialized: incremental
-- @unique_key: order_id
-- @watermark: order_ts
-- @tags: daily, pos
-- @description: One row per POS or online order.
-- @grain: order_id
-- @subject: record_key: 'pos_customers:' || pos_customer_id
-- @test: unique(order_id)
-- @test: not_null(order_id, pos_customer_id, order_ts)
-- @test: accepted_values(currency, 'USD', 'GBP', 'EUR')
-- @test: relationships(pos_customer_id, staging.pos_customers.pos_customer_id)
-- @test: empty(select * from this where amount < 0)
-- A source may deliver an order again (a correction): the latest version of each order wins.
select
    order_id,
    pos_customer_id,
    store_id,
    channel,
    order_ts,
    category,
    items,
    amount,
    currency
from (
    select
        *,
        row_number() over (partition by order_id order by order_ts desc) as version_rank
    from pos_orders
) as versions
where version_rank = 1
