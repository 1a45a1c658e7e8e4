"""Persistence: engines, migrations and one repository module per kind of record."""
