-- Web and app events with typed timestamps; a view, planned into the jobs that read it.
-- @materialized: view
-- @tags: web
-- @description: Web/app events with a timestamp column.
select
    event_id,
    anonymous_id,
    nullif(user_id, '') as user_id,
    nullif(lower(trim(email)), '') as email,
    event_type,
    page,
    country,
    to_timestamp_micros(event_ts) as event_ts
from web_events
