-- Churn features, defined once for two snapshots: `train` (as of 180 days before
-- profiles.as_of, with the label: did the customer order again in the next 180 days?) and
-- `current` (as of profiles.as_of, no label: the rows to score). Only customers who had
-- bought before the snapshot are in it. Every feature looks only at what happened before its
-- snapshot, so the model never sees the future it predicts. A table, not a view: the model
-- and the scoring job both read it, so it is computed once per run.
-- @materialized: table
-- @tags: daily, scores, churn
-- @description: Churn model features per customer at two snapshots (train with label, current without).
with snapshots as (
    select s.snapshot, s.snapshot = 'train' as labelled
    from (values ('train'), ('current')) as s(snapshot)
),
-- Each source is read once: every row is placed against both snapshots (`train` at as_of − 180
-- days, `current` at as_of), summed per customer side by side, and the two snapshots become two
-- rows at the end.
orders as (
    select
        rc.customer_id,
        o.order_ts,
        cast(o.amount as double) as amount,
        o.channel = 'online' as online,
        a.as_of - interval '180 days' as train_at,
        a.as_of as current_at
    from profiles.as_of a
    cross join staging.orders o
    join unify.record_customer rc on rc.record_key = 'pos_customers:' || o.pos_customer_id
),
purchase as (
    select
        customer_id,
        max(train_at) as train_at,
        max(current_at) as current_at,
        min(order_ts) as first_order_ts,
        count(*) filter (where order_ts <= train_at) as train_orders,
        sum(case when order_ts <= train_at then amount else 0 end) as train_revenue,
        count(*) filter (where order_ts <= train_at and order_ts > train_at - interval '90 days') as train_orders_90d,
        count(*) filter (where order_ts <= train_at and order_ts > train_at - interval '365 days') as train_orders_365d,
        max(case when online and order_ts <= train_at then 1 else 0 end) as train_buys_online,
        max(case when order_ts <= train_at then order_ts end) as train_last_order_ts,
        count(*) filter (where order_ts > train_at and order_ts <= train_at + interval '180 days') as orders_next_180d,
        count(*) filter (where order_ts <= current_at) as current_orders,
        sum(case when order_ts <= current_at then amount else 0 end) as current_revenue,
        count(*) filter (where order_ts <= current_at and order_ts > current_at - interval '90 days') as current_orders_90d,
        count(*) filter (where order_ts <= current_at and order_ts > current_at - interval '365 days') as current_orders_365d,
        max(case when online and order_ts <= current_at then 1 else 0 end) as current_buys_online,
        max(case when order_ts <= current_at then order_ts end) as current_last_order_ts
    from orders
    group by customer_id
),
email_events as (
    select
        ci.customer_id,
        e.event_type,
        cast(e.event_ts as timestamp) <= a.as_of - interval '180 days'
            and cast(e.event_ts as timestamp) > a.as_of - interval '180 days' - interval '365 days' as train_year,
        cast(e.event_ts as timestamp) <= a.as_of
            and cast(e.event_ts as timestamp) > a.as_of - interval '365 days' as current_year
    from profiles.as_of a
    cross join email_engagement e
    join unify.customer_identifiers ci
        on ci.kind = 'email' and ci.value = email_canonical(e.email) and ci.customers = 1
),
email as (
    select
        customer_id,
        count(*) filter (where train_year and event_type = 'sent') as train_sent,
        count(*) filter (where train_year and event_type = 'open') as train_opened,
        count(*) filter (where train_year and event_type = 'click') as train_clicked,
        count(*) filter (where current_year and event_type = 'sent') as current_sent,
        count(*) filter (where current_year and event_type = 'open') as current_opened,
        count(*) filter (where current_year and event_type = 'click') as current_clicked
    from email_events
    where train_year or current_year
    group by customer_id
),
support as (
    select
        rc.customer_id,
        sum(case when cast(t.created_at as timestamp) <= a.as_of - interval '180 days'
            and cast(t.created_at as timestamp) > a.as_of - interval '180 days' - interval '365 days' then 1 else 0 end) as train_tickets,
        sum(case when cast(t.created_at as timestamp) <= a.as_of
            and cast(t.created_at as timestamp) > a.as_of - interval '365 days' then 1 else 0 end) as current_tickets
    from profiles.as_of a
    cross join support_tickets t
    join unify.record_customer rc on rc.record_key = 'support_tickets:' || t.ticket_id
    group by rc.customer_id
),
-- One row per customer and snapshot, each column the snapshot's own.
features as (
    select
        s.snapshot,
        s.labelled,
        p.customer_id,
        case when s.labelled then p.train_at else p.current_at end as at,
        case when s.labelled then p.train_orders else p.current_orders end as orders,
        case when s.labelled then p.train_revenue else p.current_revenue end as revenue,
        case when s.labelled then p.train_orders_90d else p.current_orders_90d end as orders_90d,
        case when s.labelled then p.train_orders_365d else p.current_orders_365d end as orders_365d,
        case when s.labelled then p.train_buys_online else p.current_buys_online end as buys_online,
        case when s.labelled then p.train_last_order_ts else p.current_last_order_ts end as last_order_ts,
        p.first_order_ts,
        p.orders_next_180d,
        case when s.labelled then e.train_sent else e.current_sent end as emails_sent_365d,
        case when s.labelled then e.train_opened else e.current_opened end as emails_opened_365d,
        case when s.labelled then e.train_clicked else e.current_clicked end as emails_clicked_365d,
        case when s.labelled then t.train_tickets else t.current_tickets end as tickets_365d
    from snapshots s
    cross join (purchase p
        left join email e on e.customer_id = p.customer_id
        left join support t on t.customer_id = p.customer_id)
)
select
    f.snapshot,
    f.customer_id,
    cast(f.orders as double) as orders,
    f.revenue / f.orders as average_order_value,
    cast(f.orders_90d as double) as orders_90d,
    cast(f.orders_365d as double) as orders_365d,
    cast(f.buys_online as double) as buys_online,
    cast(date_part('day', f.at - f.last_order_ts) as double) as days_since_last_order,
    cast(date_part('day', f.at - f.first_order_ts) as double) as tenure_days,
    cast(coalesce(f.emails_sent_365d, 0) as double) as emails_sent_365d,
    cast(coalesce(f.emails_opened_365d, 0) as double) as emails_opened_365d,
    cast(coalesce(f.emails_clicked_365d, 0) as double) as emails_clicked_365d,
    cast(coalesce(f.tickets_365d, 0) as double) as tickets_365d,
    case when f.labelled then f.orders_next_180d = 0 end as churned
from features f
where f.orders > 0
