"""Monitoring: metrics and costs computed from the request log's rollups, budgets, alerts, Prometheus."""
