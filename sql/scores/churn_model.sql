-- The churn model, trained in the engine on every run whose inputs changed: logistic
-- regression (L2-regularised, standardised features) of `churned` on the feature columns, one
-- customer in five held out (a stable hash of the key) for evaluation. Writes the model as a
-- row of this table per version (intercept, and coef_/mean_/scale_ per feature: score with
-- them in SQL as scores/churn.sql does) and its held-out metrics to scores.churn_model_metrics
-- (AUC, log loss and Brier score beside the base-rate baseline, calibration by decile).
-- @materialized: model
-- @unique_key: customer_id
-- @label: churned
-- @tags: daily, scores, churn
-- @description: Versioned churn model (logistic regression) trained on scores.churn_features.
select
    customer_id,
    orders,
    average_order_value,
    orders_90d,
    orders_365d,
    buys_online,
    days_since_last_order,
    tenure_days,
    emails_sent_365d,
    emails_opened_365d,
    emails_clicked_365d,
    tickets_365d,
    churned
from scores.churn_features
where snapshot = 'train'
