-- Customer purchase summaries for the lifetime-value models, at two snapshots: `calibration`
-- (history up to 180 days before profiles.as_of, plus what the customer did in those 180 days:
-- the evaluation) and `current` (history up to profiles.as_of: what the models are fitted on
-- and score). Purchases count per day (several orders on one day are one purchase), the usual
-- input of BG/NBD:
--   frequency       repeat purchase days (purchase days after the first)
--   recency         days from the first to the last purchase day
--   t               days from the first purchase day to the snapshot
--   monetary_value  average revenue of the repeat purchase days (NULL without any)
-- @materialized: view
-- @tags: daily, scores, clv
-- @description: Frequency / recency / age / spend per buying customer at a calibration and a current snapshot.
with snapshots as (
    select 'calibration' as snapshot, as_of - interval '180 days' as at, 180.0 as holdout_days from profiles.as_of
    union all
    select 'current', as_of, cast(null as double) from profiles.as_of
),
purchase_days as (
    select rc.customer_id, date_trunc('day', o.order_ts) as day, sum(cast(o.amount as double)) as revenue
    from staging.orders o
    join unify.record_customer rc on rc.record_key = 'pos_customers:' || o.pos_customer_id
    group by rc.customer_id, date_trunc('day', o.order_ts)
),
first_purchase as (
    select customer_id, min(day) as first_day, first_value(revenue order by day) as first_revenue
    from purchase_days
    group by customer_id
),
summary as (
    select
        s.snapshot,
        d.customer_id,
        s.at,
        s.holdout_days,
        max(case when d.day <= s.at then d.day end) as last_day,
        sum(case when d.day <= s.at then 1 else 0 end) as purchase_days,
        sum(case when d.day <= s.at then d.revenue else 0 end) as revenue,
        sum(case when d.day > s.at and d.day <= s.at + interval '180 days' then 1 else 0 end) as holdout_purchases,
        sum(case when d.day > s.at and d.day <= s.at + interval '180 days' then d.revenue else 0 end) as holdout_revenue
    from snapshots s cross join purchase_days d
    group by s.snapshot, d.customer_id, s.at, s.holdout_days
)
select
    s.snapshot,
    s.customer_id,
    cast(s.purchase_days - 1 as double) as frequency,
    cast(days_between(f.first_day, s.last_day) as double) as recency,
    cast(days_between(f.first_day, s.at) as double) as t,
    case when s.purchase_days > 1 then (s.revenue - f.first_revenue) / (s.purchase_days - 1) end as monetary_value,
    s.revenue as historical_revenue,
    case when s.holdout_days is not null then cast(s.holdout_purchases as double) end as holdout_purchases,
    case when s.holdout_days is not null then s.holdout_revenue end as holdout_revenue,
    s.holdout_days
from summary s
join first_purchase f on f.customer_id = s.customer_id
where s.purchase_days > 0
