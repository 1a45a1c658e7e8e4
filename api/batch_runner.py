"""Runs batches: the handler of `batch` jobs, which drains batch items through the managed call path.

Each item is one call, like the endpoint its form belongs to (`/api/generate` or `/v1/chat/completions`): routed
by a running rollout, under the submitting key's budgets and limits, with its cache policy, recorded in the request
log under the item's request id with the tags `batch` and `batch:<id>`. A job takes items of any batch, highest
priority first (so a later, more urgent batch overtakes), until its own batch has none left to run.

An item whose worker died is queued again by the sweep (or by any job waiting on it), its lost call recorded as
`interrupted`; only the worker holding an item can complete it, so none completes twice.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask

from api.chat_schema import ChatCompletionRequest, completion
from api.generate import GenerateRequest
from api.rollouts import routed_model
from api.services import services
from core.errors import AppError
from models.call_path import Call
from models.messages import GenerationRequest
from models.params import CallContext, GenerationParams
from models.results import GenerationResult
from storage.heartbeat import INTERRUPTED_ERROR, stale_after
from storage.jobs.runner import JobCancelled, JobContext, JobKind

log = logging.getLogger(__name__)
ITEM_MAX_ATTEMPTS = 3  # runs of one item cut short by a dying worker before it fails
BATCH_JOB_ATTEMPTS = 10
IDLE_SECONDS = 0.05  # how long a drain waits when no item can be taken (all running, or models at their bound)


class BatchRunner:
    """The `batch` job kind of one app; its threads run items inside the app's context."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.svc = services(app)

    def register(self) -> None:
        runner = self.svc.jobs.runner
        runner.register("batch", JobKind(self.run, max_attempts=BATCH_JOB_ATTEMPTS, backoff=1.0))
        runner.also_reclaim(self.reclaim_items)

    def run(self, context: JobContext) -> dict[str, Any]:
        """Drain items on BATCH_CONCURRENCY threads until the job's batch has none queued or running."""
        batch_id = int(context.payload["batch_id"])
        threads = self.svc.settings.batch_concurrency
        with ThreadPoolExecutor(threads, thread_name_prefix=f"batch-{batch_id}") as pool:
            drains = [pool.submit(self._drain, context, batch_id) for _ in range(threads)]
            for drain in drains:
                drain.result()
        if context.cancelled():
            raise JobCancelled(f"batch {batch_id} was cancelled")
        batch = self.svc.jobs.batches.get(batch_id)
        assert batch is not None
        return {"batch_id": batch_id, "counts": batch["counts"]}

    def _drain(self, context: JobContext, batch_id: int) -> None:
        batches, owner = self.svc.jobs.batches, self.svc.jobs.runner.owner
        limit = self.svc.settings.batch_model_concurrency
        reclaim_every, last_reclaim = self.svc.settings.run_heartbeat_seconds, time.monotonic()
        with self.app.app_context():
            while not context.cancelled():
                item = batches.claim_item(owner, limit)
                if item is not None:
                    self._run_item(item, owner)
                    if item["batch_id"] == batch_id:
                        context.progress(batches.done_items(batch_id), self._total(batch_id))
                    continue
                if batches.open_items(batch_id) == 0:
                    return
                if time.monotonic() - last_reclaim >= reclaim_every:  # items held by a worker that died
                    self.reclaim_items()
                    last_reclaim = time.monotonic()
                time.sleep(IDLE_SECONDS)

    def _total(self, batch_id: int) -> int:
        batch = self.svc.jobs.batches.get(batch_id)
        return batch["total"] if batch else 0

    def _run_item(self, item: dict[str, Any], owner: str) -> None:
        """Call the item's model and keep the outcome, if this worker still holds the item."""
        try:
            status, outcome = "succeeded", self._answered(item, self._call(item))
        except AppError as exc:
            status, outcome = "failed", _failed(item, exc.http_status, exc.code, exc.message)
        if not self.svc.jobs.batches.complete_item(item["id"], owner, status, outcome):
            log.warning("Batch item %s was taken over by another worker; its outcome there counts", item["id"])

    def _answered(self, item: dict[str, Any], result: GenerationResult) -> dict[str, Any]:
        """The stored outcome of an answered item: the body its endpoint would have answered."""
        body = ({"status": "success", **result.to_dict()} if item["kind"] == "generate"
                else completion(result, int(time.time())))
        return {"status_code": 200, "request_id": item["request_id"], "body": body}

    def _call(self, item: dict[str, Any]) -> GenerationResult:
        context = _item_context(item)
        if item["kind"] == "generate":
            body = GenerateRequest.model_validate(item["request"])
            return self._run(body.model, _generate_request(body), context, body.prompt_ref)
        chat = ChatCompletionRequest.model_validate(item["request"])
        request = GenerationRequest(tuple(chat.messages or ()), chat.only_generation(), False)
        return self._run(chat.model, request, context, chat.prompt_ref)

    def _run(self, name: str | None, request: GenerationRequest, context: CallContext,
             prompt_ref: Any) -> GenerationResult:
        model, context = routed_model(name, context)
        if prompt_ref is not None:
            request, context = self.svc.prompts.apply(prompt_ref, request, context)
        return model.run(request, context).result

    def reclaim_items(self) -> int:
        """Settle or queue again the items of workers that died (recording each call cut short), and run their
        batches again."""
        interval = self.svc.jobs.runner.heartbeat.interval
        lost = self.svc.jobs.batches.reclaim_abandoned(stale_after(interval), ITEM_MAX_ATTEMPTS, self._recovered)
        for item in lost:
            self._record_lost_call(item)
        for job_id in {int(item["job_id"]) for item in lost}:
            self.svc.jobs.runner.requeue(job_id)
        if lost:
            log.warning("Queued again %d batch item(s) whose worker stopped mid-call", len(lost))
        return len(lost)

    def _recovered(self, item: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """The outcome of an item whose call ended (its request-log row exists) before its worker died; None when
        the call was cut short."""
        row = self.svc.request_log.get(item["request_id"]) if item["request_id"] else None
        if row is None:
            return None
        if row["status"] != "success":
            return "failed", _failed(item, None, row["error_type"] or "error", row["error_message"] or "")
        return "succeeded", self._answered(item, _logged_result(row))

    def _record_lost_call(self, item: dict[str, Any]) -> None:
        """The one row of the call a dead worker had in flight (it never wrote one)."""
        model = self.svc.registry.get_model(item["model"])
        if model is None:
            log.warning("Cannot record the interrupted call %s: model %r is not registered", item["request_id"],
                        item["model"])
            return
        params = GenerationParams.model_validate({key: value for key, value in item["request"].items()
                                                  if key in GenerationParams.model_fields})
        request = GenerationRequest.build(item["request"].get("prompt") or "", params=params)
        reason = f"{INTERRUPTED_ERROR} (batch {item['batch_id']}, item {item['position']})"
        model.call_path.record_interrupted(Call(model, request, _item_context(item), item["request_id"]), reason)


def _failed(item: dict[str, Any], status_code: int | None, code: str, message: str) -> dict[str, Any]:
    return {"status_code": status_code, "request_id": item["request_id"], "error": {"code": code, "message": message}}


def _logged_result(row: dict[str, Any]) -> GenerationResult:
    """The result of a call as its request-log row recorded it."""
    fields = {name: row[name] for name in GenerationResult.__dataclass_fields__ if row.get(name) is not None}
    fields.update(tokens=row["total_tokens"], group=row["route_group"])
    return GenerationResult(**fields)


def _generate_request(body: GenerateRequest) -> GenerationRequest:
    if body.prompt_ref is not None:  # the registry prompt's conversation replaces these
        return GenerationRequest((), body.only_generation(), False)
    return GenerationRequest.build(body.prompt, messages=body.messages, system=body.system,
                                   params=body.only_generation())


def _item_context(item: dict[str, Any]) -> CallContext:
    """The item's call: the submitter's key, user and tags, the batch's tags, and the request id the item holds."""
    saved = item["context"] or {}
    tags = (*saved.get("tags", ()), "batch", f"batch:{item['batch_id']}")
    return CallContext(source="api", user_id=saved.get("user_id"), api_key_id=saved.get("api_key_id"),
                       tags=tuple(dict.fromkeys(tags)), request_id=item["request_id"],
                       cache=item["request"].get("cache"), cache_ttl=item["request"].get("cache_ttl"))


def register_batch_jobs(app: Flask) -> None:
    """Make `batch` jobs runnable in this app's processes (web and `flask worker`)."""
    BatchRunner(app).register()

