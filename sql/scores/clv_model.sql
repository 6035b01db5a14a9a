-- The lifetime-value models, fitted in the engine on every run whose inputs changed:
-- BG/NBD (how many purchases, and whether the customer is still active) and Gamma–Gamma (how
-- much per purchase), by maximum likelihood on the `current` summaries (full histories, in
-- days). A second fit on the `calibration` summaries predicts the following 180 days, written
-- to scores.clv_model_metrics beside a naive baseline (each customer keeps buying at their
-- past repeat rate and spending their past average): purchases and revenue MAE and RMSE,
-- totals, calibration by decile of predicted purchases, and the frequency/spend correlation
-- (Gamma–Gamma assumes spend does not depend on frequency: check it is near 0).
-- Assumptions: while active, a customer buys at a steady random rate; after each purchase
-- they may leave for good; rates, drop-out probabilities and spend levels vary across
-- customers (Gamma, Beta and Gamma distributions). No seasonality, no marketing effects, no
-- returns: read the predictions as "if customers behave as they did".
-- @materialized: model
-- @algorithm: bg_nbd_gamma_gamma
-- @tags: daily, scores, clv
-- @description: Versioned BG/NBD + Gamma–Gamma lifetime-value model (r, alpha, a, b, p, q, v), fitted on scores.clv_features.
select
    customer_id,
    frequency,
    recency,
    t,
    monetary_value,
    holdout_purchases,
    holdout_revenue,
    holdout_days
from scores.clv_features
