-- Churn features, defined once for two snapshots: `train` (as of 180 days before
-- profiles.as_of, with the label: did the customer order again in the next 180 days?) and
-- `current` (as of profiles.as_of, no label: the rows to score). Only customers who had
-- bought before the snapshot are in it. Every feature looks only at what happened before its
-- snapshot, so the model never sees the future it predicts.
-- @materialized: view
-- @tags: daily, scores, churn
-- @description: Churn model features per customer at two snapshots (train with label, current without).
with snapshots as (
    select 'train' as snapshot, as_of - interval '180 days' as at, true as labelled from profiles.as_of
    union all
    select 'current', as_of, false from profiles.as_of
),
orders as (
    select rc.customer_id, o.order_ts, o.amount, o.channel
    from staging.orders o
    join unify.record_customer rc on rc.record_key = 'pos_customers:' || o.pos_customer_id
),
purchase as (
    select
        s.snapshot,
        s.labelled,
        o.customer_id,
        sum(case when o.order_ts <= s.at then 1 else 0 end) as orders,
        sum(case when o.order_ts <= s.at then cast(o.amount as double) else 0 end) as revenue,
        sum(case when o.order_ts <= s.at and o.order_ts > s.at - interval '90 days' then 1 else 0 end) as orders_90d,
        sum(case when o.order_ts <= s.at and o.order_ts > s.at - interval '365 days' then 1 else 0 end) as orders_365d,
        max(case when o.channel = 'online' and o.order_ts <= s.at then 1 else 0 end) as buys_online,
        date_part('day', s.at - max(case when o.order_ts <= s.at then o.order_ts end)) as days_since_last_order,
        date_part('day', s.at - min(o.order_ts)) as tenure_days,
        sum(case when o.order_ts > s.at and o.order_ts <= s.at + interval '180 days' then 1 else 0 end) as orders_next_180d
    from snapshots s cross join orders o
    group by s.snapshot, s.labelled, s.at, o.customer_id
),
email as (
    select
        s.snapshot,
        ci.customer_id,
        sum(case when e.event_type = 'sent' then 1 else 0 end) as emails_sent_365d,
        sum(case when e.event_type = 'open' then 1 else 0 end) as emails_opened_365d,
        sum(case when e.event_type = 'click' then 1 else 0 end) as emails_clicked_365d
    from snapshots s
    cross join email_engagement e
    join unify.customer_identifiers ci
        on ci.kind = 'email' and ci.value = email_canonical(e.email) and ci.customers = 1
    where cast(e.event_ts as timestamp) <= s.at and cast(e.event_ts as timestamp) > s.at - interval '365 days'
    group by s.snapshot, ci.customer_id
),
support as (
    select s.snapshot, rc.customer_id, count(*) as tickets_365d
    from snapshots s
    cross join support_tickets t
    join unify.record_customer rc on rc.record_key = 'support_tickets:' || t.ticket_id
    where cast(t.created_at as timestamp) <= s.at and cast(t.created_at as timestamp) > s.at - interval '365 days'
    group by s.snapshot, rc.customer_id
)
select
    p.snapshot,
    p.customer_id,
    cast(p.orders as double) as orders,
    p.revenue / p.orders as average_order_value,
    cast(p.orders_90d as double) as orders_90d,
    cast(p.orders_365d as double) as orders_365d,
    cast(p.buys_online as double) as buys_online,
    cast(p.days_since_last_order as double) as days_since_last_order,
    cast(p.tenure_days as double) as tenure_days,
    cast(coalesce(e.emails_sent_365d, 0) as double) as emails_sent_365d,
    cast(coalesce(e.emails_opened_365d, 0) as double) as emails_opened_365d,
    cast(coalesce(e.emails_clicked_365d, 0) as double) as emails_clicked_365d,
    cast(coalesce(s.tickets_365d, 0) as double) as tickets_365d,
    case when p.labelled then p.orders_next_180d = 0 end as churned
from purchase p
left join email e on e.snapshot = p.snapshot and e.customer_id = p.customer_id
left join support s on s.snapshot = p.snapshot and s.customer_id = p.customer_id
where p.orders > 0
