-- Segment membership: one row per customer and segment they are in, re-evaluated every run.
-- Each segment is a plain SQL predicate over the profile and score tables; add one by adding a
-- `union all` branch. Tracked: `segments.membership_changes` records who entered (`add`) and
-- who exited (`remove`) on each run, `segments.membership_history` keeps every membership
-- with `valid_from`/`valid_to`, and Delta's change data feed is on for syncing tools.
-- @materialized: tracked
-- @unique_key: customer_id, segment
-- @tags: daily, segments
-- @description: Customer × segment membership (non-exclusive), with history and enter/exit changes.
-- @grain: customer_id, segment
-- @test: not_null(customer_id, segment)
-- @test: relationships(customer_id, profiles.customer_360.customer_id)
select customer_id, 'high_value' as segment
from profiles.customer_360 where revenue_365d >= 1000
union all
select customer_id, 'lapsing_buyers'
from profiles.customer_360 where orders >= 2 and days_since_last_order between 90 and 365
union all
select customer_id, 'cart_abandoners'
from profiles.customer_360 where add_to_carts_30d > 0 and orders_30d = 0
union all
select customer_id, 'email_engaged'
from profiles.customer_360 where emails_opened_90d > 0 and not unsubscribed
union all
select customer_id, 'never_purchased'
from profiles.customer_360 where orders = 0
union all
select customer_id, 'rfm_' || rfm_segment
from scores.rfm
union all
select customer_id, 'high_predicted_value'
from scores.clv where value_tier = 'top' and p_alive >= 0.5
union all
select customer_id, 'high_churn_risk'
from scores.churn where churn_risk = 'high'
