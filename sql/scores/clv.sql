-- Lifetime value per buying customer: historical (revenue so far) and predicted for the next
-- 365 days with the latest model of scores.clv_model — expected purchase days
-- (bg_nbd_expected_purchases) × expected revenue per purchase day (gamma_gamma_average_value),
-- undiscounted — with the probability the customer is still active (bg_nbd_p_alive) and a
-- value tier by predicted value. The same functions score any other horizon from any query.
-- @materialized: table
-- @tags: daily, scores, clv
-- @description: Historical and predicted 365-day lifetime value, P(alive) and value tier per buying customer.
-- @grain: customer_id
-- @test: unique(customer_id)
-- @test: not_null(customer_id, historical_value, p_alive, expected_purchases_365d, predicted_value_365d, model_version)
-- @test: empty(select * from this where p_alive < 0 or p_alive > 1 or predicted_value_365d < 0)
with model as (
    select * from scores.clv_model order by model_version desc limit 1
),
scored as (
    select
        f.customer_id,
        f.historical_revenue as historical_value,
        f.frequency,
        f.recency,
        f.t,
        bg_nbd_p_alive(m.r, m.alpha, m.a, m.b, f.frequency, f.recency, f.t) as p_alive,
        bg_nbd_expected_purchases(m.r, m.alpha, m.a, m.b, f.frequency, f.recency, f.t, 365) as expected_purchases_365d,
        gamma_gamma_average_value(m.p, m.q, m.v, f.frequency, f.monetary_value) as expected_purchase_value,
        m.model_version
    from model m
    cross join scores.clv_features f
    where f.snapshot = 'current'
)
select
    customer_id,
    historical_value,
    p_alive,
    expected_purchases_365d,
    expected_purchase_value,
    expected_purchases_365d * expected_purchase_value as predicted_value_365d,
    historical_value + expected_purchases_365d * expected_purchase_value as total_value,
    -- Ties (the same history predicts the same value; last bits can differ between a local
    -- and a clustered run) are broken by customer id, so a tier is the same on every run.
    case ntile(5) over (
        order by round(expected_purchases_365d * expected_purchase_value, 6) desc, customer_id
    )
        when 1 then 'top'
        when 2 then 'high'
        when 3 then 'medium'
        when 4 then 'low'
        else 'lowest'
    end as value_tier,
    model_version
from scored
