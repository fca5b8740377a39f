"""marketlake: a PySpark + Delta Lake lakehouse."""
