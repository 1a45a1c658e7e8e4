"""The per-key policy on the managed call path: a key's model allow-list and its per-minute limits hold for
every call made with it, whatever made the call (/api/generate, workflows, comparisons, experiments, /v1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from api.key_store import ApiKeyStore, KeyPolicy
from models.call_path import Call
from models.errors import CallRefusedError
from models.results import GenerationResult
from storage.clock import utcnow
from storage.minute_usage import MinuteUsage, MinuteWindow, WindowCounts

COUNTED_KEY = "api_key_tpm"  # Call.extras: the key whose token limit this call's tokens count against


class ModelNotAllowedError(CallRefusedError):
    """The key's allow-list does not name the model; refused before the provider is called."""

    code = "model_not_allowed"
    http_status = 403


class KeyRateLimitedError(CallRefusedError):
    """The key has used its calls or tokens of this minute; `details.retry_after` says when the next begins."""

    code = "rate_limited"
    http_status = 429


class KeyPolicyGuard:
    """A `CallHook`: `before_call` refuses a model off the allow-list or a key over its RPM or TPM, and counts
    the call; `after_call` counts its tokens. Calls without a managed key pass untouched."""

    def __init__(self, keys: ApiKeyStore, usage: MinuteUsage, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.keys = keys
        self.usage = usage
        self.clock = clock

    def before_call(self, call: Call) -> None:
        key = self.keys.identity(call.api_key_id) if call.api_key_id else None
        if key is None:  # no key, or a bootstrap key: no policy
            return
        policy = key.policy
        route = call.context.route  # a group's attempt: the key named the group, and the group chose the model
        named = route.group if route is not None else call.model.name
        if policy.models is not None and named not in policy.models:
            raise ModelNotAllowedError(
                f"This API key may not call model {named!r}; it may call: {', '.join(policy.models)}",
                details={"model": named, "allowed": list(policy.models)})
        if not policy.limited or (route is not None and route.attempt > 0):  # one client request counts once
            return
        window = MinuteWindow.at(self.clock())
        refused = self.usage.admit(key.id, window, rpm=policy.rpm, tpm=policy.tpm)
        if refused is not None:
            raise _rate_limited(policy, refused, window)
        if policy.tpm is not None:
            call.extras[COUNTED_KEY] = key.id

    def after_call(self, call: Call, result: GenerationResult) -> None:
        key_id = call.extras.pop(COUNTED_KEY, None)
        if key_id is not None and result.tokens:
            self.usage.add_tokens(key_id, MinuteWindow.at(self.clock()), result.tokens)


def _rate_limited(policy: KeyPolicy, counts: WindowCounts, window: MinuteWindow) -> KeyRateLimitedError:
    by_requests = policy.rpm is not None and counts.requests >= policy.rpm
    limit, allowed, used = ("rpm", policy.rpm, counts.requests) if by_requests else ("tpm", policy.tpm, counts.tokens)
    unit = "requests" if by_requests else "tokens"
    return KeyRateLimitedError(
        f"This API key has reached its limit of {unit} per minute ({allowed}); retry in {window.retry_after} s",
        details={"limit": limit, "limit_value": allowed, "used": used, "window_start": window.start.isoformat() + "Z",
                 "retry_after": window.retry_after})
