-- The moment profile traits and scores are computed for: the latest activity loaded (orders,
-- web events, email engagement). Recency and time windows count back from it, so scores stay
-- meaningful when data arrives late, and re-running on the same data gives the same result.
-- Replace it with `select now() as as_of` to count from the wall clock.
-- @materialized: view
-- @tags: daily, profiles
-- @description: One row: the as-of timestamp for traits and scores.
select greatest(
    (select max(order_ts) from staging.orders),
    (select max(event_ts) from staging.web_events),
    (select max(cast(event_ts as timestamp)) from email_engagement)
) as as_of
