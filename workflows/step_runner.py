"""One step: render, call the model through the registry, parse, and apply the step's error policy."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import AppError
from models.call_path import Call, new_request_id
from models.errors import ModelError
from models.messages import GenerationRequest
from models.model_registry import ModelRegistry
from models.params import CallContext
from models.prompts.registry import PromptRegistry
from models.prompts.spec import PromptRef
from models.request_log import RequestLogRepository
from models.templating import render
from workflows.definitions import StepDefinition
from workflows.errors import STEP_FAILURES

log = logging.getLogger(__name__)
WORKFLOW_CONTEXT = CallContext(source="workflow")
ATTEMPT_FAILURES: tuple[type[AppError], ...] = (ModelError, *STEP_FAILURES)


@dataclass
class StepOutcome:
    """What a step produced. Figures are the request log's, summed over the step's attempts."""

    model: str
    status: str = "succeeded"
    prompt: str | None = None
    output: str = ""
    parsed: Any = None
    response: str | None = None
    tokens: int | None = None
    cost: float | None = None
    latency: float = 0.0
    request_id: str | None = None
    attempts: list[str] = field(default_factory=list)
    error: str | None = None

    def add_figures(self, tokens: int | None, cost: float | None, latency: float | None) -> None:
        if tokens is not None:
            self.tokens = (self.tokens or 0) + tokens
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost
        self.latency += latency or 0.0


class StepFailedError(Exception):
    """The step failed and its policy did not recover; `outcome` keeps what the attempts cost."""

    def __init__(self, reason: str, *, code: str, http_status: int, outcome: StepOutcome) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.http_status = http_status
        self.outcome = outcome


class StepRunner:
    """Runs single steps; every call goes through the registry's models with the run's context (source `workflow`)."""

    def __init__(self, registry: ModelRegistry, request_log: RequestLogRepository) -> None:
        self.registry = registry
        self.request_log = request_log
        self.prompts = PromptRegistry(registry.engine)

    def run(self, step: StepDefinition, context: Mapping[str, Any], model: str, *,
            caller: CallContext = WORKFLOW_CONTEXT,
            on_attempt: Callable[[StepOutcome], None] | None = None) -> StepOutcome:
        """Run `step` with `model`; returns a succeeded or defaulted outcome, or raises StepFailedError.

        `on_attempt` sees the outcome as each call starts (its prompt, model and attempts, the new one last), so
        the caller can persist the call in flight before it is made.
        """
        outcome = StepOutcome(model=model)
        try:
            request, caller = self._request(step, context, caller)
        except STEP_FAILURES as exc:
            return self.recover(step, outcome, exc)
        outcome.prompt = request.prompt
        last_error: AppError | None = None
        for candidate in self._attempt_models(step, model):
            try:
                return self._attempt(step, outcome, candidate, request, caller, on_attempt)
            except ATTEMPT_FAILURES as exc:
                last_error = exc
        assert last_error is not None
        return self.recover(step, outcome, last_error)

    def _request(self, step: StepDefinition, context: Mapping[str, Any],
                 caller: CallContext) -> tuple[GenerationRequest, CallContext]:
        """The step's call: its template rendered, or its registry prompt rendered with its variables' templates
        (the context then records the prompt version); the system prompt first."""
        prompt, messages = None, None
        if step.prompt_ref is None:
            prompt = render(step.prompt_template or "", context)
        else:
            variables = {name: render(value, context) for name, value in step.prompt_ref.variables.items()}
            rendered = self.prompts.render(PromptRef(**step.prompt_ref.model_dump(exclude={"variables"}),
                                                     variables=variables), user=caller.user_id or caller.api_key_id)
            messages, caller = rendered.messages, rendered.on(caller)
        system = render(step.system, context) if step.system else None
        return GenerationRequest.build(prompt, messages=messages, system=system, params=step.only_generation()), caller

    @staticmethod
    def _attempt_models(step: StepDefinition, model: str) -> list[str]:
        policy = step.on_error
        plan = [model] * (1 + policy.retries)
        if policy.action == "fallback" and policy.fallback_model:
            plan.append(policy.fallback_model)
        return plan

    def _attempt(self, step: StepDefinition, outcome: StepOutcome, model: str, request: GenerationRequest,
                 caller: CallContext, on_attempt: Callable[[StepOutcome], None] | None) -> StepOutcome:
        request_id = new_request_id()
        outcome.attempts.append(request_id)
        outcome.model = model
        if on_attempt is not None:
            on_attempt(outcome)
        try:
            result = self.registry.require_model(model).run(request, caller.model_copy(
                update={"request_id": request_id})).result
        except ModelError:
            self._add_recorded_figures(outcome, request_id)
            raise
        outcome.add_figures(result.tokens, result.cost, result.latency)
        outcome.request_id = result.request_id
        outcome.response = result.response
        parsed = step.parser.parse(result.response)
        outcome.output, outcome.parsed, outcome.error = parsed.output, parsed.parsed, None
        return outcome

    def _add_recorded_figures(self, outcome: StepOutcome, request_id: str) -> None:
        """A failed call may still have been billed: take its figures from its request-log row."""
        row = self.request_log.get(request_id)
        if row is not None:
            outcome.request_id = request_id
            outcome.add_figures(row["total_tokens"], row["cost"], row["latency"])

    def record_interrupted(self, step: StepDefinition, request_id: str, model: str, prompt: str | None,
                           context: CallContext, reason: str) -> None:
        """Record the call a dead process left in flight, unless it has its row already (it ended).

        What is known of it: the step's model, rendered prompt and parameters (the system prompt was not saved).
        """
        if self.request_log.get(request_id) is not None:
            return
        bound = self.registry.get_model(model)
        if bound is None:  # the model is no longer configured: nothing can say which provider it was
            log.warning("Cannot record the interrupted call %s: model %r is not registered", request_id, model)
            return
        request = GenerationRequest.build(prompt or "", params=step.only_generation())
        bound.call_path.record_interrupted(Call(bound, request, context, request_id), reason)

    @staticmethod
    def recover(step: StepDefinition, outcome: StepOutcome, error: AppError) -> StepOutcome:
        """Apply the `continue` policy, or raise StepFailedError."""
        reason = getattr(error, "message", None) or str(error)
        if step.on_error.action == "continue":
            outcome.status, outcome.output, outcome.parsed = "defaulted", step.on_error.default, None
            outcome.error = f"{error.code}: {reason}"
            return outcome
        raise StepFailedError(reason, code=error.code, http_status=error.http_status, outcome=outcome)
