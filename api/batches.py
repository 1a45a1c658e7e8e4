"""Batches over HTTP: submit many generate or chat requests at once, follow their progress, download the results.

`POST /api/batches` takes `{"requests": [...], "priority", "scheduled_at"}`, or a JSONL body
(`application/x-ndjson`, settings in the query), including OpenAI's batch file format; it answers 202 with the
batch `id`. `GET /api/batches/<id>` gives `status` and `progress: {done, total}`; `GET /api/batches/<id>/results`
streams one JSON line per item, in order. Items run as the key that submitted them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Response, jsonify, request, stream_with_context
from pydantic import BaseModel

from api.batch_requests import BatchRequest, BatchSettings, items_of_json, items_of_jsonl
from api.batch_runner import BATCH_JOB_ATTEMPTS
from api.errors import ApiError
from api.openapi import ApiBlueprint, RowId, json_object, text_body
from api.services import services
from api.tenancy import caller_key, tenant
from core.errors import InvalidInputError, NotFoundError, validation_fields
from storage.clock import utcnow

bp = ApiBlueprint("batches", __name__, url_prefix="/api")
NDJSON = "application/x-ndjson"
BATCH = json_object("{id, status (scheduled, queued, running, completed, cancelled, failed), progress: {done, total}, "
                    "counts by item status, priority, scheduled_at, created_at, finished_at, job_id, format}")


class BatchPath(BaseModel):
    batch_id: RowId


@bp.post("/batches", responses={202: json_object("{id, job_id, status, total}")})
def submit_batch(query: BatchSettings) -> tuple[Response, int]:
    """Queue a batch: a JSON body {requests, priority, scheduled_at}, or JSONL (application/x-ndjson) with the
    settings in the query; each request in `/api/generate` or chat completion form, or an OpenAI batch line."""
    if request.mimetype == NDJSON:
        settings = query
        items, form = items_of_jsonl(request.get_data(as_text=True))
    elif request.is_json:
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            raise ApiError(400, "invalid_json", "The body must be a JSON object with `requests`")
        try:
            body = BatchRequest.model_validate(payload)
        except ValueError as exc:
            raise InvalidInputError(validation_fields(exc)) from None
        settings, (items, form) = body, items_of_json(body)
    else:
        raise ApiError(415, "unsupported_media_type", f"Send application/json or {NDJSON}")
    jobs = services().jobs
    batch_id, job_id = jobs.batches.create(items, format=form, priority=settings.priority,
                                           scheduled_at=settings.start_at(), api_key_id=caller_key(),
                                           max_attempts=BATCH_JOB_ATTEMPTS)
    jobs.runner.dispatch(job_id)
    return jsonify({"id": batch_id, "job_id": job_id, "status": _describe(_batch(batch_id))["status"],
                    "total": len(items)}), 202


@bp.get("/batches/<int:batch_id>", responses={200: BATCH})
def get_batch(path: BatchPath) -> Response:
    """The batch's status and progress."""
    return jsonify(_describe(_batch(path.batch_id)))


@bp.get("/batches/<int:batch_id>/results", responses={200: text_body(NDJSON, "One JSON line per item, in order: "
                                                                     "{custom_id, position, status, response, error}")})
def batch_results(path: BatchPath) -> Response:
    """Every item's outcome as JSONL, in submission order (unfinished items say so and carry no response)."""
    _batch(path.batch_id)
    lines = services().jobs.batches.results(path.batch_id)
    return Response(stream_with_context(_jsonl(path.batch_id, lines)), mimetype=NDJSON)


@bp.post("/batches/<int:batch_id>/cancel", responses={200: BATCH})
def cancel_batch(path: BatchPath) -> Response:
    """Cancel the items not started yet; running ones finish."""
    batch = _batch(path.batch_id)
    jobs = services().jobs
    jobs.batches.cancel(path.batch_id)
    jobs.runner.store.cancel(batch["job_id"])
    return jsonify(_describe(_batch(path.batch_id)))


def _batch(batch_id: int) -> dict[str, Any]:
    """The batch, or 404 when absent or another tenant's."""
    batch = services().jobs.batches.get(batch_id, api_key_id=tenant())
    if batch is None:
        raise NotFoundError(f"No batch {batch_id}", details={"id": batch_id})
    return batch


def _describe(batch: dict[str, Any]) -> dict[str, Any]:
    counts, total = batch["counts"], batch["total"]
    done = sum(counts.get(status, 0) for status in ("succeeded", "failed", "cancelled"))
    job = services().jobs.runner.store.get(batch["job_id"])
    if batch["cancelled_at"] is not None:
        status = "cancelled"
    elif done == total:
        status = "completed"
    elif job is not None and job["status"] == "failed":
        status = "failed"
    elif done or counts.get("running"):
        status = "running"
    else:
        status = "scheduled" if batch["scheduled_at"] > utcnow() else "queued"
    return {"id": int(batch["id"]), "status": status, "progress": {"done": done, "total": total},
            "counts": counts, "priority": batch["priority"], "scheduled_at": _iso(batch["scheduled_at"]),
            "created_at": _iso(batch["created_at"]), "finished_at": _iso(batch["finished_at"]) if done == total
            else None, "job_id": int(batch["job_id"]), "format": batch["format"],
            "error": job["error"] if job is not None and status == "failed" else None}


def _jsonl(batch_id: int, items: Iterator[dict[str, Any]]) -> Iterator[str]:
    for item in items:
        outcome = item["result"] or {}
        response = None
        if "body" in outcome:
            response = {"status_code": outcome["status_code"], "request_id": outcome["request_id"],
                        "body": outcome["body"]}
        yield json.dumps({"id": f"batch_{batch_id}_item_{item['position']}", "custom_id": item["custom_id"],
                          "position": item["position"], "status": item["status"],
                          "request_id": item["request_id"], "response": response,
                          "error": outcome.get("error")}) + "\n"


def _iso(value: Any) -> str | None:
    return value.isoformat() + "Z" if value is not None else None
