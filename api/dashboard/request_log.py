"""The request log: the calls `/api/requests` lists, filtered from a GET form (so a view is a URL to share) and paged
by a cursor on the row id, so an old page costs what the first does; and one call in full."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

from flask import render_template, request, url_for
from pydantic import Field, ValidationError, field_validator

from api.dashboard import bp, page
from api.generate import RequestsQuery
from api.services import services

PAGE_SIZE = 50
STATUSES = get_args(get_args(RequestsQuery.model_fields["status"].annotation)[0])  # the Literal's values

page("request_log", "Request log")


class LogFilters(RequestsQuery):
    """The filter form and the cursor: `before`, the last row id of the page
    before. Times without an offset are UTC."""

    limit: int = Field(default=PAGE_SIZE, ge=1, le=500)
    api_key_id: str | None = None
    tag: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = Field(default=None, ge=1)

    @field_validator("since", "until")
    @classmethod
    def _naive_utc(cls, value: datetime | None) -> datetime | None:
        """The log stores naive UTC."""
        return value.astimezone(UTC).replace(tzinfo=None) if value and value.tzinfo else value


@bp.get("/requests")
def request_log() -> tuple[str, int]:
    """Only the form's filled fields are kept: an empty one filters nothing, and links never carry `_external`
    or another `url_for` option."""
    args = {key: value for key, value in request.args.items() if key in LogFilters.model_fields and value}
    try:
        filters = LogFilters.model_validate(args)
    except ValidationError as exc:
        return _render(args, errors=[f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]), 400
    # One row past the page says whether an older page exists, without counting the log.
    rows = services().request_log.list(filters.limit + 1, **filters.model_dump(exclude={"limit"}))
    if len(rows) <= filters.limit:
        return _render(args, rows=rows), 200
    rows = rows[:filters.limit]
    return _render(args, rows=rows, older=_link({**args, "before": rows[-1]["id"]})), 200


def _render(args: dict[str, str], *, rows: list[dict[str, Any]] | None = None, older: str | None = None,
            errors: list[str] | None = None) -> str:
    newest = _link({key: value for key, value in args.items() if key != "before"}) if "before" in args else None
    return render_template("dashboard/request_log.html", args=args, rows=rows or [], older=older, newest=newest,
                           errors=errors or [], statuses=STATUSES, models=services().registry.list_models())


def _link(args: dict[str, Any]) -> str:
    return url_for("dashboard.request_log", **args)


@bp.get("/requests/<request_id>")
def request_detail(request_id: str) -> tuple[str, int]:
    """One call in full; an unknown id is a 404 page."""
    row = services().request_log.get(request_id)
    return render_template("dashboard/request_detail.html", row=row, request_id=request_id), 200 if row else 404
