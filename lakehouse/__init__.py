"""Shared core of the lakehouse: settings, event schemas, reference data, table registry, Spark."""
