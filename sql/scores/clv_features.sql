-- Customer purchase summaries for the lifetime-value models, at two snapshots: `calibration`
-- (history up to 180 days before profiles.as_of, plus what the customer did in those 180 days:
-- the evaluation) and `current` (history up to profiles.as_of: what the models are fitted on
-- and score). Purchases count per day (several orders on one day are one purchase), the usual
-- input of BG/NBD:
--   frequency       repeat purchase days (purchase days after the first)
--   recency         days from the first to the last purchase day
--   t               days from the first purchase day to the snapshot
--   monetary_value  average revenue of the repeat purchase days (NULL without any)
-- The purchase days are read once: both snapshots are summed side by side per customer, then
-- made two rows. A table, not a view: the model and the scoring job both read it, so it is
-- computed once per run.
-- @materialized: table
-- @tags: daily, scores, clv
-- @description: Frequency / recency / age / spend per buying customer at a calibration and a current snapshot.
with purchase_days as (
    select rc.customer_id, date_trunc('day', o.order_ts) as day, sum(cast(o.amount as double)) as revenue
    from staging.orders o
    join unify.record_customer rc on rc.record_key = 'pos_customers:' || o.pos_customer_id
    group by rc.customer_id, date_trunc('day', o.order_ts)
),
-- Per customer, both snapshots side by side (`calibration` at as_of − 180 days, with the
-- purchases of the 180 days after it; `current` at as_of).
summary as (
    select
        d.customer_id,
        a.as_of - interval '180 days' as calibration_at,
        a.as_of as current_at,
        min(d.day) as first_day,
        first_value(d.revenue order by d.day) as first_revenue,
        max(case when d.day <= a.as_of - interval '180 days' then d.day end) as calibration_last_day,
        sum(case when d.day <= a.as_of - interval '180 days' then 1 else 0 end) as calibration_days,
        sum(case when d.day <= a.as_of - interval '180 days' then d.revenue else 0 end) as calibration_revenue,
        sum(case when d.day > a.as_of - interval '180 days' and d.day <= a.as_of then 1 else 0 end) as holdout_purchases,
        sum(case when d.day > a.as_of - interval '180 days' and d.day <= a.as_of then d.revenue else 0 end) as holdout_revenue,
        max(case when d.day <= a.as_of then d.day end) as current_last_day,
        sum(case when d.day <= a.as_of then 1 else 0 end) as current_days,
        sum(case when d.day <= a.as_of then d.revenue else 0 end) as current_revenue
    from profiles.as_of a cross join purchase_days d
    group by d.customer_id, a.as_of
),
snapshots as (
    select s.snapshot, s.snapshot = 'calibration' as calibration
    from (values ('calibration'), ('current')) as s(snapshot)
),
summaries as (
    select
        s.snapshot,
        p.customer_id,
        case when s.calibration then p.calibration_at else p.current_at end as at,
        case when s.calibration then 180.0 end as holdout_days,
        case when s.calibration then p.calibration_last_day else p.current_last_day end as last_day,
        case when s.calibration then p.calibration_days else p.current_days end as purchase_days,
        case when s.calibration then p.calibration_revenue else p.current_revenue end as revenue,
        p.holdout_purchases,
        p.holdout_revenue,
        p.first_day,
        p.first_revenue
    from snapshots s cross join summary p
)
select
    s.snapshot,
    s.customer_id,
    cast(s.purchase_days - 1 as double) as frequency,
    cast(days_between(s.first_day, s.last_day) as double) as recency,
    cast(days_between(s.first_day, s.at) as double) as t,
    case when s.purchase_days > 1 then (s.revenue - s.first_revenue) / (s.purchase_days - 1) end as monetary_value,
    s.revenue as historical_revenue,
    case when s.holdout_days is not null then cast(s.holdout_purchases as double) end as holdout_purchases,
    case when s.holdout_days is not null then s.holdout_revenue end as holdout_revenue,
    s.holdout_days
from summaries s
where s.purchase_days > 0
