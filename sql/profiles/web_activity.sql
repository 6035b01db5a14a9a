-- Web activity per known user email.
-- @materialized: table
-- @tags: daily, web, profiles
-- @description: Sessions' events, first and last visit per email seen on the web.
-- @grain: email
-- @test: unique(email)
-- @test: not_null(email)
select
    email,
    count(*) as events,
    count(distinct anonymous_id) as devices,
    min(event_ts) as first_seen_at,
    max(event_ts) as last_seen_at
from staging.web_events
where email is not null
group by email
