"""Fraud scoring: a random forest and an Isolation Forest per case, combined into a risk score (conf/fraud.yaml)."""
