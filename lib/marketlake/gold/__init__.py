"""Gold: partitioned marts, RFM, churn, cohorts and point-in-time trend joins built from silver."""
