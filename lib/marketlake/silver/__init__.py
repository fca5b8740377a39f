"""Silver: typed, conformed, deduplicated tables built from bronze, with data-quality rules, a quarantine per
domain and per-run accounting (see conf/silver.yaml and conf/quality.yaml)."""
