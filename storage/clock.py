"""Time in one convention: naive datetimes in UTC, the form stored in every table."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
