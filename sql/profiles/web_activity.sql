-- Web activity per known user email.
-- @materialized: table
-- @tags: daily, web, profiles
-- @description: Sessions' events, first and last visit per email seen on the web.
-- @grain: email
-- @test: unique(email)
-- @test: not_null(email)
-- Per email and device first, then per email: `count(distinct ...)` per group keeps a hash set
-- per email and needs gigabytes at a million emails; two plain aggregations do not.
select
    email,
    sum(events) as events,
    count(anonymous_id) as devices,
    min(first_seen_at) as first_seen_at,
    max(last_seen_at) as last_seen_at
from (
    select email, anonymous_id, count(*) as events, min(event_ts) as first_seen_at, max(event_ts) as last_seen_at
    from staging.web_events
    where email is not null
    group by email, anonymous_id
) per_device
group by email
