"""Models trained on gold tables: features, training, calibration, tracking, scoring and drift."""
