-- Segment sizes over time, from the membership history: for every run that changed the
-- membership, how many customers each segment held from then on.
-- @materialized: view
-- @tags: segments
-- @description: Members per segment at each membership change (time series for reports).
with moments as (
    select distinct valid_from as at from segments.membership_history
)
select m.at, h.segment, count(*) as members
from moments m
join segments.membership_history h
    on h.valid_from <= m.at and (h.valid_to is null or h.valid_to > m.at)
group by m.at, h.segment
