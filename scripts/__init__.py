"""Operational commands behind ./run.sh: services, replay, retrain, query."""
