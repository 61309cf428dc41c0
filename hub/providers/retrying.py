"""A pydantic-ai model wrapper that retries transient failures before a response starts.

The retry happens around opening each streamed request (the provider SDK raises HTTP errors
there, and pydantic-ai reads the first chunk there too), so a retried request has shown the
user nothing yet: streamed text is never duplicated. A failure after the stream has started
surfaces as it is. Each request of a tool loop gets its own retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from hub.providers.failures import Endpoint, RetryPolicy, to_model_error

log = logging.getLogger("agenthub.providers")

Sleep = Callable[[float], Awaitable[None]]


class RetryingModel(WrapperModel):
    """Retries opening a streamed request on transient failures, per `RetryPolicy`."""

    def __init__(
        self, wrapped: Model, policy: RetryPolicy, endpoint: Endpoint, *, sleep: Sleep | None = None
    ) -> None:
        super().__init__(wrapped)
        self.policy = policy
        self.endpoint = endpoint
        self._sleep = sleep or asyncio.sleep

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        attempt = 0
        while True:
            stack = AsyncExitStack()
            try:
                response = await stack.enter_async_context(
                    self.wrapped.request_stream(
                        messages, model_settings, model_request_parameters, run_context
                    )
                )
            except ModelAPIError as exc:
                attempt += 1
                error = to_model_error(exc, self.endpoint)
                delay = self.policy.delay(exc, error, attempt)
                if delay is None:
                    raise
                log.warning(
                    "%s: %s (%s); retry %d/%d in %.1fs",
                    self.endpoint.spec,
                    error.code,
                    type(exc).__name__,
                    attempt,
                    self.policy.max_retries,
                    delay,
                )
                await self._sleep(delay)
                continue
            async with stack:
                yield response
            return
