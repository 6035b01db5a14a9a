-- Web and app events with typed timestamps; a view, planned into the jobs that read it.
-- @materialized: view
-- @tags: web
-- @description: Web/app events with a timestamp column.
select
    event_id,
    anonymous_id,
    nullif(user_id, '') as user_id,
    nullif(lower(trim(email)), '') as email,
    -- Profile traits, on the events that set them (signup).
    nullif(trim(first_name), '') as first_name,
    nullif(trim(last_name), '') as last_name,
    nullif(trim(phone), '') as phone,
    nullif(trim(postal_code), '') as postal_code,
    nullif(trim(loyalty_number), '') as loyalty_number,
    event_type,
    page,
    country,
    to_timestamp_micros(event_ts) as event_ts
from web_events
