-- RFM: recency, frequency and monetary scores from 1 (lowest fifth of buyers) to 5 (highest
-- fifth), and the named segments marketers use. Scores come from (percent) ranks, so customers
-- with the same value always get the same score (ties never straddle a boundary), and a
-- re-run on the same data gives the same scores. Only customers with at least one order are
-- scored. Segment grid (R = recency score, FM = rounded mean of F and M, first match wins):
--   champions          R 4-5, FM 4-5      at_risk            R 1-2, FM 3-4
--   cannot_lose_them   R 1,   FM 5        loyal              R 3-5, FM 3-5
--   new_customers      R 5,   FM 1        promising          R 4,   FM 1
--   potential_loyalist R 4-5, FM 2        need_attention     R 3,   FM 2
--   about_to_sleep     R 3,   FM 1        hibernating        R 2,   FM 1-2
--   lost               R 1,   FM 1-2
-- @materialized: table
-- @tags: daily, scores
-- @description: RFM scores (1-5) and named RFM segment per buying customer.
-- @grain: customer_id
-- @test: unique(customer_id)
-- @test: not_null(customer_id, r_score, f_score, m_score, rfm_segment)
-- @test: empty(select * from this where r_score not between 1 and 5 or f_score not between 1 and 5 or m_score not between 1 and 5)
with buyers as (
    select customer_id, days_since_last_order as recency_days, orders as frequency, revenue as monetary
    from profiles.customer_360
    where orders > 0
),
-- Percent rank in exact integer arithmetic: 1 + 5 * (rank - 1) / (buyers - 1), capped at 5.
ranked as (
    select
        *,
        -- More recent (fewer days) is better.
        rank() over (order by recency_days desc) - 1 as r_rank,
        rank() over (order by frequency) - 1 as f_rank,
        rank() over (order by monetary) - 1 as m_rank,
        greatest(count(*) over () - 1, 1) as span
    from buyers
),
scored as (
    select
        customer_id,
        recency_days,
        frequency,
        monetary,
        cast(least(5, 1 + 5 * r_rank / span) as int) as r_score,
        cast(least(5, 1 + 5 * f_rank / span) as int) as f_score,
        cast(least(5, 1 + 5 * m_rank / span) as int) as m_score
    from ranked
),
fm as (
    select *, cast(round((f_score + m_score) / 2.0) as int) as fm_score from scored
)
select
    customer_id,
    recency_days,
    frequency,
    monetary,
    r_score,
    f_score,
    m_score,
    cast(r_score as varchar) || cast(f_score as varchar) || cast(m_score as varchar) as rfm_cell,
    case
        when r_score >= 4 and fm_score >= 4 then 'champions'
        when r_score = 1 and fm_score = 5 then 'cannot_lose_them'
        when r_score <= 2 and fm_score >= 3 then 'at_risk'
        when r_score >= 3 and fm_score >= 3 then 'loyal'
        when r_score = 5 and fm_score = 1 then 'new_customers'
        when r_score = 4 and fm_score = 1 then 'promising'
        when r_score >= 4 and fm_score = 2 then 'potential_loyalist'
        when r_score = 3 and fm_score = 2 then 'need_attention'
        when r_score = 3 and fm_score = 1 then 'about_to_sleep'
        when r_score = 2 then 'hibernating'
        else 'lost'
    end as rfm_segment
from fm
