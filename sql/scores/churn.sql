-- Churn scores: the latest model of scores.churn_model applied in plain SQL to the current
-- features — p = 1 / (1 + exp(-(intercept + Σ coef · (x − mean) / scale))), a missing value
-- counting as the mean. Any query can score the same way (this is all there is to it).
-- @materialized: table
-- @tags: daily, scores, churn
-- @description: Probability of no order in the next 180 days per buying customer, with a risk band.
-- @grain: customer_id
-- @test: unique(customer_id)
-- @test: not_null(customer_id, churn_probability, model_version)
-- @test: empty(select * from this where churn_probability < 0 or churn_probability > 1)
with model as (
    select * from scores.churn_model order by model_version desc limit 1
),
scored as (
    select
        f.customer_id,
        1.0 / (1.0 + exp(-(
        m.intercept
        + m.coef_orders * (coalesce(f.orders, m.mean_orders) - m.mean_orders) / m.scale_orders
        + m.coef_average_order_value * (coalesce(f.average_order_value, m.mean_average_order_value) - m.mean_average_order_value) / m.scale_average_order_value
        + m.coef_orders_90d * (coalesce(f.orders_90d, m.mean_orders_90d) - m.mean_orders_90d) / m.scale_orders_90d
        + m.coef_orders_365d * (coalesce(f.orders_365d, m.mean_orders_365d) - m.mean_orders_365d) / m.scale_orders_365d
        + m.coef_buys_online * (coalesce(f.buys_online, m.mean_buys_online) - m.mean_buys_online) / m.scale_buys_online
        + m.coef_days_since_last_order * (coalesce(f.days_since_last_order, m.mean_days_since_last_order) - m.mean_days_since_last_order) / m.scale_days_since_last_order
        + m.coef_tenure_days * (coalesce(f.tenure_days, m.mean_tenure_days) - m.mean_tenure_days) / m.scale_tenure_days
        + m.coef_emails_sent_365d * (coalesce(f.emails_sent_365d, m.mean_emails_sent_365d) - m.mean_emails_sent_365d) / m.scale_emails_sent_365d
        + m.coef_emails_opened_365d * (coalesce(f.emails_opened_365d, m.mean_emails_opened_365d) - m.mean_emails_opened_365d) / m.scale_emails_opened_365d
        + m.coef_emails_clicked_365d * (coalesce(f.emails_clicked_365d, m.mean_emails_clicked_365d) - m.mean_emails_clicked_365d) / m.scale_emails_clicked_365d
        + m.coef_tickets_365d * (coalesce(f.tickets_365d, m.mean_tickets_365d) - m.mean_tickets_365d) / m.scale_tickets_365d
        ))) as churn_probability,
        m.model_version
    from model m
    cross join scores.churn_features f
    where f.snapshot = 'current'
)
select
    customer_id,
    churn_probability,
    case
        when churn_probability >= 0.6 then 'high'
        when churn_probability >= 0.3 then 'medium'
        else 'low'
    end as churn_risk,
    model_version
from scored
