"""Routing and resilience: model groups, their strategies and fallbacks, and circuit breakers per deployment."""
