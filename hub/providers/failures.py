"""Provider failures as the user sees them, and which of them are worth retrying.

pydantic-ai already sorts provider errors into categories (authentication, not found, rate
limit, ...); this module turns each into a `ModelError` whose message names what to fix.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelQuotaExceededError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelRequestTimeout,
    ModelServerError,
    ModelTimeoutError,
    ModelUnavailableError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)

from hub.errors import ModelError

RETRYABLE_CODES = frozenset(
    {"rate_limited", "timeout", "unreachable", "stream_cut", "unavailable", "server_error"}
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where requests go, and which settings fix what, for error messages."""

    spec: str
    where: str
    key_env: str | None
    url_env: str | None = None
    missing_model_fix: str | None = None


def to_model_error(exc: BaseException, endpoint: Endpoint) -> ModelError:
    """Map a pydantic-ai (or transport) failure onto a `ModelError` naming what to fix."""
    code, message = _classify(exc, endpoint)
    return ModelError(code, message, retryable=code in RETRYABLE_CODES)


def _classify(exc: BaseException, ep: Endpoint) -> tuple[str, str]:
    status = f" (HTTP {exc.status_code})" if isinstance(exc, ModelHTTPError) else ""
    url_hint = f" or {ep.url_env}" if ep.url_env else ""
    if isinstance(exc, ModelAuthenticationError):
        fix = f"set {ep.key_env} to a valid key" if ep.key_env else "check the server's credentials"
        return "auth", f"{ep.where} refused the API key{status}: {fix} for {ep.spec}"
    if isinstance(exc, ModelNotFoundError):
        fix = ep.missing_model_fix or f"pick another with AGENTHUB_MODEL{url_hint}"
        return "model_not_found", f"{ep.where} does not know the model in {ep.spec}{status}: {fix}"
    if isinstance(exc, ModelQuotaExceededError):
        return "quota_exceeded", (
            f"{ep.where} says the account's quota or credits are used up{status}: top it up "
            f"or use another key ({ep.key_env or 'credentials'})"
        )
    if isinstance(exc, ModelRateLimitError):
        when = f"in {exc.retry_after:g}s" if exc.retry_after else "soon"
        return "rate_limited", f"{ep.where} is rate-limiting requests{status}: try again {when}"
    if isinstance(exc, ModelContextWindowExceededError):
        return "context_window", (
            f"the conversation no longer fits {ep.spec}'s context window: start a new session, "
            "or set a smaller context_window so it compacts sooner"
        )
    if isinstance(exc, ModelRequestTimeout | ModelTimeoutError):
        return "timeout", (
            f"{ep.where} did not answer in time: try again, or raise request_timeout if the "
            "model is just slow"
        )
    if isinstance(exc, ModelConnectionError):
        if exc.in_stream or exc.phase == "read":
            return "stream_cut", f"the connection to {ep.where} broke off mid-reply: try again"
        return "unreachable", (
            f"could not connect to {ep.where}: is the server running and the address right"
            f"{' (' + ep.url_env + ')' if ep.url_env else ''}?"
        )
    if isinstance(exc, ModelUnavailableError):
        return "unavailable", f"{ep.where} is unavailable or overloaded{status}: try again later"
    if isinstance(exc, ModelServerError):
        return "server_error", f"{ep.where} failed with a server error{status}: try again later"
    if isinstance(exc, ModelRequestRejectedError):
        return "bad_request", f"{ep.where} rejected the request{status}: {exc.message}"
    if isinstance(exc, ModelAPIError):
        return "provider_error", f"{ep.where} failed{status}: {exc.message}"
    if isinstance(exc, UsageLimitExceeded):
        return "usage_limit", f"the run hit a usage limit: {exc}"
    if isinstance(exc, UnexpectedModelBehavior):
        return "model_behavior", f"{ep.spec} answered in a way the agent cannot use: {exc.message}"
    return "internal", f"the model runtime failed ({type(exc).__name__}: {exc})"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter; a provider's retry-after wins up to `max_delay`."""

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, exc: ModelAPIError, error: ModelError, attempt: int) -> float | None:
        """Seconds to wait before retry number `attempt` (1-based), or None to give up."""
        if not error.retryable or attempt > self.max_retries:
            return None
        if exc.retry_after is not None:
            wait = float(exc.retry_after)
            # A wait past the cap is not worth holding the queue for: surface it now.
            return wait if wait <= self.max_delay else None
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return backoff * random.uniform(0.5, 1.0)
