"""Privacy and governance: erasure, suppression, retention, subject access and PII detection."""
