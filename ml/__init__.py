"""Forecasting and anomaly models over the silver/gold tables, tracked in MLflow."""
