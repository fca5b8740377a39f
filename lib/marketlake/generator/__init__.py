"""Deterministic, distributed generator of realistic landing files for the exchange, commerce and trends domains.

Every value is a pure function of (seed, stream name, row keys), computed with Spark column expressions, so the
same seed and scale give identical rows whatever the number of cores or partitions.
"""
