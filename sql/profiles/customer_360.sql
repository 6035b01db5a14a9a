-- The customer 360: the golden record beside what each customer did — purchases, web,
-- email, support and consent — one row per customer. Windowed traits (30/90/365 days) are
-- conditional aggregates, so each source is read once. One-row inputs come first in a cross join
-- (`from as_of a cross join big`): DataFusion keeps the left side in memory, and sources
-- without statistics (JSON, CSV) would otherwise be held whole. "Now" is `profiles.as_of`: the latest
-- activity loaded, so a late load does not make every customer look lapsed.
-- @materialized: table
-- @tags: daily, profiles
-- @description: One row per customer: golden record, purchase, web, email, support and consent traits.
-- @grain: customer_id
-- @test: unique(customer_id)
-- @test: not_null(customer_id, orders, revenue)
-- @test: relationships(customer_id, profiles.customers.customer_id)
-- @test: empty(select * from this where orders_30d > orders_90d or orders_90d > orders_365d or orders_365d > orders)
with as_of as (
    select as_of from profiles.as_of
),
orders as (
    select rc.customer_id, o.*
    from staging.orders o
    join unify.record_customer rc on rc.record_key = 'pos_customers:' || o.pos_customer_id
),
-- Purchases, with the channels used and the most frequent store (of store orders), category and
-- currency (ties: the smallest value), in one grouping per customer: `most_frequent` and
-- `distinct_values` keep each customer's few values in small lists, so this stays one pass over
-- the orders at millions of customers.
purchases as (
    select
        o.customer_id,
        count(*) as orders,
        sum(amount) as revenue,
        sum(items) as items,
        min(order_ts) as first_order_at,
        max(order_ts) as last_order_at,
        sum(case when order_ts > a.as_of - interval '30 days' then 1 else 0 end) as orders_30d,
        sum(case when order_ts > a.as_of - interval '90 days' then 1 else 0 end) as orders_90d,
        sum(case when order_ts > a.as_of - interval '365 days' then 1 else 0 end) as orders_365d,
        sum(case when order_ts > a.as_of - interval '30 days' then amount else 0 end) as revenue_30d,
        sum(case when order_ts > a.as_of - interval '90 days' then amount else 0 end) as revenue_90d,
        sum(case when order_ts > a.as_of - interval '365 days' then amount else 0 end) as revenue_365d,
        distinct_values(channel) as channels,
        most_frequent(case when channel = 'store' then store_id end) as preferred_store,
        most_frequent(category) as preferred_category,
        most_frequent(currency) as currency
    from as_of a cross join orders o
    group by o.customer_id
),
-- A device counts for the one customer who ever logged in on it (a shared tablet counts for
-- nobody). Events are summed per device first, then per customer: the join and the grouping
-- work on devices, not on every event.
devices as (
    select l.anonymous_id, min(ci.customer_id) as customer_id
    from (select distinct anonymous_id, user_id from staging.web_events where user_id is not null) l
    join unify.customer_identifiers ci on ci.kind = 'web_user_id' and ci.value = l.user_id
    group by l.anonymous_id
    having min(ci.customer_id) = max(ci.customer_id)
),
device_activity as (
    select
        w.anonymous_id,
        count(*) as web_events,
        sum(case when w.event_ts > a.as_of - interval '30 days' then 1 else 0 end) as web_events_30d,
        sum(case when w.event_type = 'add_to_cart' and w.event_ts > a.as_of - interval '30 days' then 1 else 0 end)
            as add_to_carts_30d,
        max(w.event_ts) as last_web_visit_at
    from as_of a
    cross join staging.web_events w
    group by w.anonymous_id
),
web as (
    select
        d.customer_id,
        sum(v.web_events) as web_events,
        sum(v.web_events_30d) as web_events_30d,
        sum(v.add_to_carts_30d) as add_to_carts_30d,
        count(*) as devices,
        max(v.last_web_visit_at) as last_web_visit_at
    from device_activity v
    join devices d on d.anonymous_id = v.anonymous_id
    group by d.customer_id
),
-- Email engagement counts for the customer who alone holds the address.
email as (
    select
        ci.customer_id,
        sum(case when e.event_type = 'sent' then 1 else 0 end) as emails_sent,
        sum(case when e.event_type = 'open' then 1 else 0 end) as emails_opened,
        sum(case when e.event_type = 'click' then 1 else 0 end) as emails_clicked,
        sum(case when e.event_type = 'open' and cast(e.event_ts as timestamp) > a.as_of - interval '90 days' then 1 else 0 end)
            as emails_opened_90d,
        max(case when e.event_type in ('open', 'click') then cast(e.event_ts as timestamp) end) as last_email_engagement_at,
        max(case when e.event_type = 'unsubscribe' then 1 else 0 end) = 1 as unsubscribed
    from as_of a
    cross join email_engagement e
    join unify.customer_identifiers ci
        on ci.kind = 'email' and ci.value = email_canonical(e.email) and ci.customers = 1
    group by ci.customer_id
),
support as (
    select
        rc.customer_id,
        count(*) as tickets,
        sum(case when t.status <> 'closed' then 1 else 0 end) as open_tickets,
        avg(cast(t.satisfaction as double)) as avg_satisfaction,
        max(cast(t.created_at as timestamp)) as last_ticket_at
    from support_tickets t
    join unify.record_customer rc on rc.record_key = 'support_tickets:' || t.ticket_id
    group by rc.customer_id
),
consent as (
    select
        customer_id,
        bool_or(purpose = 'email_marketing' and granted) as email_marketing_consent,
        bool_or(purpose = 'sms_marketing' and granted) as sms_marketing_consent,
        bool_or(purpose = 'ads_personalization' and granted) as ads_consent,
        bool_or(purpose = 'analytics' and granted) as analytics_consent
    from profiles.customer_consent
    group by customer_id
)
select
    c.customer_id,
    c.first_name,
    c.last_name,
    c.display_name,
    c.email,
    c.phone,
    c.birth_date,
    c.postal_code,
    c.city,
    c.country,
    -- The earliest evidence: the oldest record or the first order, whichever came first.
    least(c.customer_since, p.first_order_at) as customer_since,
    c.records,
    c.sources,
    -- Purchases.
    coalesce(p.orders, 0) as orders,
    coalesce(p.revenue, 0) as revenue,
    coalesce(p.items, 0) as items,
    p.revenue / p.orders as average_basket,
    p.first_order_at,
    p.last_order_at,
    cast(date_part('day', a.as_of - p.last_order_at) as bigint) as days_since_last_order,
    coalesce(p.orders_30d, 0) as orders_30d,
    coalesce(p.orders_90d, 0) as orders_90d,
    coalesce(p.orders_365d, 0) as orders_365d,
    coalesce(p.revenue_30d, 0) as revenue_30d,
    coalesce(p.revenue_90d, 0) as revenue_90d,
    coalesce(p.revenue_365d, 0) as revenue_365d,
    p.channels,
    p.preferred_store,
    p.preferred_category,
    p.currency,
    -- Web.
    coalesce(w.web_events, 0) as web_events,
    coalesce(w.web_events_30d, 0) as web_events_30d,
    coalesce(w.add_to_carts_30d, 0) as add_to_carts_30d,
    coalesce(w.devices, 0) as devices,
    w.last_web_visit_at,
    -- Email.
    coalesce(e.emails_sent, 0) as emails_sent,
    coalesce(e.emails_opened, 0) as emails_opened,
    coalesce(e.emails_clicked, 0) as emails_clicked,
    coalesce(e.emails_opened_90d, 0) as emails_opened_90d,
    cast(e.emails_opened as double) / nullif(e.emails_sent, 0) as email_open_rate,
    e.last_email_engagement_at,
    coalesce(e.unsubscribed, false) as unsubscribed,
    -- Support.
    coalesce(s.tickets, 0) as tickets,
    coalesce(s.open_tickets, 0) as open_tickets,
    s.avg_satisfaction,
    s.last_ticket_at,
    -- Consent (no record: no consent).
    coalesce(k.email_marketing_consent, false) as email_marketing_consent,
    coalesce(k.sms_marketing_consent, false) as sms_marketing_consent,
    coalesce(k.ads_consent, false) as ads_consent,
    coalesce(k.analytics_consent, false) as analytics_consent,
    a.as_of
-- Every customer, with each trait table joined on (`x right join (customers) on ...` keeps
-- every customer, like a left join, but builds the join's hash table from the narrow trait table
-- and streams the wide golden records through, so memory stays flat at millions of customers).
from consent k
right join (support s
    right join (email e
        right join (web w
            right join (purchases p
                right join (as_of a cross join profiles.customers c)
                on p.customer_id = c.customer_id)
            on w.customer_id = c.customer_id)
        on e.customer_id = c.customer_id)
    on s.customer_id = c.customer_id)
on k.customer_id = c.customer_id
