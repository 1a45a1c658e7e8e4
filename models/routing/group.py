"""A model group: a name clients use exactly like a model's, served by deployments in the order a strategy picks,
then by its fallbacks.

Each attempt is an ordinary managed call of its deployment, so it is one request-log row with its own cost,
budget reservation and breaker report, linked to the client's request by `CallContext.route`. A deployment whose
breaker is open, or that cannot take the request (a prompt past its context window, a parameter it does not
honour), is skipped without a call. A retryable failure moves on to the next one; a stream moves on only before
its first chunk, since text already sent cannot be taken back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInputError
from models.base_model import BaseModel, Capabilities, StreamResponse
from models.cache.response_cache import CacheLookup
from models.call_path import CHAT, Call, new_request_id
from models.embeddings import EmbeddingRequest
from models.errors import (
    ContextLengthExceededError,
    MissingAPIKeyError,
    ProviderAuthError,
    is_retryable,
)
from models.messages import GenerationRequest
from models.params import CallContext, GenerationParams, Route
from models.results import EmbeddingResult, GenerationResult, Usage
from models.routing.breakers import BreakerPolicy, CircuitOpenError
from models.routing.deployment_limits import DeploymentLimits
from models.routing.strategies import Deployment, DeploymentStats, Orderer

GROUP_PROVIDER = "group"
LOCAL_PROVIDER = "local"  # the embedded model: a fallback to it is a degraded answer
# Output tokens the `cost` strategy prices a call at when it sets no `max_tokens`.
ASSUMED_OUTPUT_TOKENS = 256


def fails_over(error: BaseException) -> bool:
    """Whether another deployment may answer where this one failed: the provider failed (429, 5xx, timeout,
    connection), its breaker is open, or its key is missing or refused (that deployment's configuration)."""
    return is_retryable(error) or isinstance(error, (CircuitOpenError, MissingAPIKeyError, ProviderAuthError))


class ModelGroup(BaseModel):
    """Deployments under a strategy, then fallbacks (models or other groups) once every deployment failed."""

    provider = GROUP_PROVIDER

    def __init__(self, name: str, orderer: Orderer, limits: DeploymentLimits, *,
                 fallbacks: Sequence[BaseModel] = (), breaker_policy: BreakerPolicy | None = None,
                 budget_pressure: BudgetPressure | None = None) -> None:
        # Not BaseModel.__init__: a group has no price of its own to look up (each attempt is priced by its model).
        self.name, self.pricing, self._call_path = name, None, None
        self.orderer = orderer
        self.limits = limits
        self.fallbacks = tuple(fallbacks)
        self.breaker_policy = breaker_policy
        self.budget_pressure = budget_pressure
        models = [d.model for d in orderer.deployments]
        caps = [model.capabilities for model in models]
        self.capabilities = Capabilities(
            streaming=all(c.streaming for c in caps), system_prompt=all(c.system_prompt for c in caps),
            thinking=any(c.thinking for c in caps), token_counting=all(c.token_counting for c in caps),
            chat=any(c.chat for c in caps), embeddings=any(c.embeddings for c in caps),
            embedding_dimensions=any(c.embedding_dimensions for c in caps))
        self.context_window = max(model.context_window for model in self.members())
        self.max_output_tokens = max(model.max_output_tokens for model in models)

    @property
    def deployments(self) -> tuple[Deployment, ...]:
        return self.orderer.deployments

    @property
    def stats(self) -> DeploymentStats:
        return self.orderer.stats

    def members(self) -> list[BaseModel]:
        """Every model this group may call: its deployments, then its fallbacks' (groups expanded), once each."""
        return _unique([d.model for d in self.deployments]
                       + [m for fallback in self.fallbacks for m in _expand(fallback)])

    # --- the managed API -------------------------------------------------------------------------------------------

    def run(self, request: GenerationRequest, context: CallContext | None = None) -> StreamResponse:
        """The group's cached answer if it has one (its own policy, under its own name), else the first
        deployment to answer. Parameters no deployment honours are refused by the first deployment, as it is
        tried (see `_admissible`)."""
        self._require(self.capabilities.chat, CHAT)
        context = context or CallContext()
        looked = self.call_path.lookup_cache(self, request, context)
        if looked.hit is not None:
            call = Call(self, request, context, context.request_id or new_request_id())
            return StreamResponse(self.call_path.run(call, looked), call)
        stream = StreamResponse(self._route(request, context, looked,
                                            serving=lambda name: setattr(stream, "served_by", name)))
        return stream

    def run_embeddings(self, request: EmbeddingRequest, context: CallContext | None = None) -> EmbeddingResult:
        self.check_embeddings(request)
        context = context or CallContext()
        client_id = context.request_id or new_request_id()
        failure: BaseException | None = None
        plan = self._plan(input_tokens=request.text_bytes(), output_tokens=0, stream=False)
        for attempt, (deployment, degraded) in enumerate(self._admissible(plan, _fits_embeddings(request))):
            try:
                result = deployment.model.run_embeddings(
                    request, _attempt_context(context, self.name, client_id, attempt, degraded))
            except Exception as exc:
                if not fails_over(exc):
                    raise
                failure = exc
                continue
            self.limits.add_tokens(deployment, result.input_tokens)
            result.request_id = client_id  # the attempt's row keeps its own id; the caller gets its request's
            return result
        assert failure is not None
        raise failure

    def _route(self, request: GenerationRequest, context: CallContext, looked: CacheLookup,
               serving: Callable[[str], None]) -> Generator[str, None, GenerationResult]:
        """The chunks of the first deployment that starts answering (`serving` is told its name first); returns
        its result under the client's id."""
        client_id = context.request_id or new_request_id()
        failure: BaseException | None = None
        plan = self._plan(input_tokens=request.text_bytes(),
                          output_tokens=request.params.max_tokens or ASSUMED_OUTPUT_TOKENS, stream=request.stream)
        for attempt, (deployment, degraded) in enumerate(self._admissible(plan, _fits_chat(request))):
            model = deployment.model
            stream = model.run(request, _attempt_context(context, self.name, client_id, attempt, degraded))
            self.stats.started(model.name)
            try:
                texts = stream.start()
            except Exception as exc:  # recorded as this attempt's row already
                self.stats.ended(model.name)
                if not fails_over(exc):
                    raise
                failure = exc
                continue
            serving(model.name)
            chunks: list[str] = []
            try:
                for text in texts:  # a failure from here on ends the stream: its text is already out
                    chunks.append(text)
                    yield text
            finally:
                stream.close()
                self.stats.ended(model.name)
            result = stream.result
            self.stats.observe(model.name, result)
            self.limits.add_tokens(deployment, result.tokens)
            result.request_id = client_id  # the attempt's row keeps its own id; the caller gets its request's
            self.call_path.store_in_cache(self, request, context, result, chunks, looked)
            return result
        assert failure is not None
        raise failure

    def _plan(self, **size: Any) -> Iterator[tuple[Deployment, bool]]:
        """(deployment, degraded) in the order to try: deployments by strategy, then fallbacks (a group's in its
        own order); each model once. An embedded model reached as a fallback answers degraded."""
        seen: set[str] = set()
        for deployment in self.orderer.order(**size, cheapest_first=self._saving()):
            seen.add(deployment.name)
            yield deployment, False
        for fallback in self.fallbacks:
            tail = fallback._plan(**size) if isinstance(fallback, ModelGroup) else [(Deployment(fallback), False)]
            for deployment, _ in tail:
                if deployment.name not in seen:
                    seen.add(deployment.name)
                    yield deployment, deployment.model.provider == LOCAL_PROVIDER

    def _saving(self) -> bool:
        """Whether the named budget has crossed the group's threshold, so the cheapest deployments go first."""
        pressure = self.budget_pressure
        if pressure is None:
            return False
        share = self.call_path.budget_share(pressure.budget)
        return share is not None and share >= pressure.threshold

    def _admissible(self, plan: Iterator[tuple[Deployment, bool]],
                    fits: Callable[[BaseModel], bool]) -> Iterator[tuple[Deployment, bool]]:
        """The plan without the deployments that cannot take the call now: it does not fit them, their breaker is
        open, or their minute's calls or tokens are used up. When none can, the first is still tried, so that its
        refusal (an open breaker, a prompt too long) is recorded and answered as for a plain model; when limits
        alone stopped them all, the call is refused with 429."""
        breakers = self.call_path.breakers
        first: tuple[Deployment, bool] | None = None
        tried = limited = False
        for candidate in plan:
            first = first or candidate
            deployment = candidate[0]
            if not fits(deployment.model) or breakers.blocks(deployment.name):
                continue
            if not self.limits.admit(deployment):
                limited = True
                continue
            tried = True
            yield candidate
        if tried or first is None:
            return
        if limited:
            raise self.limits.busy_error(self.name)
        yield first

    # --- what a group is, for callers that inspect a model ----------------------------------------------------------

    def check_context(self, request: GenerationRequest) -> None:
        """Refused only when no member's window fits (the largest one says why), or, with images, no member
        sees them."""
        members = self.members()
        if request.images:
            members = [model for model in members if model.capabilities.vision] or members
        max(members, key=lambda model: model.context_window).check_context(request)

    def count_tokens(self, text: str) -> int:
        return self.deployments[0].model.count_tokens(text)

    def execute(self, request: GenerationRequest, usage: Usage) -> Iterator[str]:
        raise TypeError(f"{self.name} is a group: it is called through run(), which picks a deployment")

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "strategy": self.orderer.strategy,
            "deployments": [{"model": d.name, "weight": d.weight, "priority": d.priority, "rpm": d.rpm, "tpm": d.tpm,
                             "tags": list(d.tags)} for d in self.deployments],
            "fallbacks": [fallback.name for fallback in self.fallbacks],
            "circuit_breaker": self.breaker_policy.model_dump() if self.breaker_policy else None,
            "budget_aware": dataclasses.asdict(self.budget_pressure) if self.budget_pressure else None,
        }


@dataclass(frozen=True)
class BudgetPressure:
    """Route cheapest-first once `budget` (a soft budget's name) has spent `threshold` of its limit."""

    budget: str
    threshold: float


def _attempt_context(context: CallContext, group: str, client_id: str, attempt: int, degraded: bool) -> CallContext:
    route = Route(group=group, client_request_id=client_id, attempt=attempt, degraded=degraded)
    return context.model_copy(update={"request_id": None, "route": route})


def _expand(model: BaseModel) -> list[BaseModel]:
    return model.members() if isinstance(model, ModelGroup) else [model]


def _unique(models: list[BaseModel]) -> list[BaseModel]:
    return list({model.name: model for model in models}.values())


def _accepts(model: BaseModel, params: GenerationParams) -> bool:
    try:
        model.check_params(params)
    except InvalidInputError:
        return False
    return True


def _fits_chat(request: GenerationRequest) -> Callable[[BaseModel], bool]:
    """Whether a model can take this conversation: it chats, honours its parameters, tools and images, and its
    window holds the prompt (so a long prompt goes to a deployment with a larger window)."""
    def fits(model: BaseModel) -> bool:
        if not model.capabilities.chat or not _accepts(model, request.params):
            return False
        if request.uses_tools and "tools" not in model.supported_params:
            return False
        if request.images and not model.capabilities.vision:
            return False
        try:
            model.check_context(request)
        except ContextLengthExceededError:
            return False
        return True
    return fits


def _fits_embeddings(request: EmbeddingRequest) -> Callable[[BaseModel], bool]:
    def fits(model: BaseModel) -> bool:
        try:
            model.check_embeddings(request)  # it embeds, and honours `dimensions` if asked
        except InvalidInputError:
            return False
        return True
    return fits
