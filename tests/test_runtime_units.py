"""Unit tests of the model runtime: specs, tools, history mapping, and the pydantic-ai stream
mapping driven by pydantic-ai's own FunctionModel and TestModel."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_ai import ModelRetry
from pydantic_ai.exceptions import ModelAPIError, UnexpectedModelBehavior
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.models.test import TestModel

from hub.echo import EchoModel
from hub.errors import ModelError
from hub.model import (
    ModelPart,
    ModelTurn,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageReport,
)
from hub.providers import VALID_FORMS, ModelConfig, build_model, check_model, describe_model
from hub.providers.calculator import CalculatorError, calculate
from hub.providers.failures import Endpoint, RetryPolicy, to_model_error
from hub.providers.history import SUMMARY_HEADING, instructions, to_model_messages
from hub.providers.runtime import PydanticAIModel
from hub.providers.specs import ModelSpec, parse_spec
from hub.providers.tools import build_tools, current_time, load_tool
from hub.sessions import HistoryEntry, MessageEntry, ToolEntry
from tests.fake_openai import FakeOpenAI, Fault

ENDPOINT = Endpoint("test:fn", "the test model", None)


def flaky_tool(count: int) -> str:
    """Asks the model to retry (a user tool for tests)."""
    raise ModelRetry(f"count {count} is wrong, try another")


NOT_CALLABLE = 3


def user(text: str, seq: int) -> MessageEntry:
    return MessageEntry(id=f"u{seq}", run_id=f"r{seq}", seq=seq, role="user", text=text)


def assistant(text: str, seq: int) -> MessageEntry:
    return MessageEntry(id=f"a{seq}", run_id=f"r{seq}", seq=seq, role="assistant", text=text)


def tool(seq: int, *, is_error: bool = False) -> ToolEntry:
    return ToolEntry(
        id=f"t{seq}",
        run_id=f"r{seq}",
        seq=seq,
        tool_call_id=f"c{seq}",
        tool_name="calculator",
        args={"expression": "1+1"},
        result="boom" if is_error else 2,
        is_error=is_error,
    )


def turn(text: str, context: Sequence[HistoryEntry] = (), summary: str | None = None) -> ModelTurn:
    return ModelTurn(agent_id="main", run_id="r", text=text, context=context, summary=summary)


async def collect(model: PydanticAIModel, model_turn: ModelTurn) -> list[ModelPart]:
    return [part async for part in model.stream(model_turn)]


# -- specs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ModelSpec("echo")),
        ("", ModelSpec("echo")),
        ("echo", ModelSpec("echo")),
        ("openai:gpt-4o-mini", ModelSpec("openai", "gpt-4o-mini")),
        ("OpenAI:gpt-4o", ModelSpec("openai", "gpt-4o")),
        ("anthropic:claude-sonnet-4-5", ModelSpec("anthropic", "claude-sonnet-4-5")),
        ("ollama:llama3.2:3b", ModelSpec("ollama", "llama3.2:3b")),
        ("local", ModelSpec("local")),
        ("local:/models/x.gguf", ModelSpec("local", "/models/x.gguf")),
    ],
)
def test_parse_spec(text: str | None, expected: ModelSpec) -> None:
    assert parse_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("gpt-4o", VALID_FORMS),
        ("mistral:large", VALID_FORMS),
        ("echo:loud", VALID_FORMS),
        ("openai:", "names no model"),
        ("local:/models/x.bin", ".gguf"),
    ],
)
def test_bad_specs_name_the_valid_forms(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="spec") as caught:
        parse_spec(text)
    assert says in str(caught.value)


def test_describe_without_a_model_says_how_to_pick_one() -> None:
    line = describe_model(ModelConfig())
    assert line.startswith("echo (no model configured")
    assert "AGENTHUB_MODEL" in line
    assert "openai:gpt-4o-mini" in line
    assert "ollama:llama3.2" in line


def test_describe_names_the_endpoint_and_never_the_key() -> None:
    config = ModelConfig(spec="openai:gpt-4o-mini", openai_api_key=SecretStr("sk-secret-123"))
    line = describe_model(config)
    assert "openai:gpt-4o-mini" in line
    assert "https://api.openai.com/v1" in line
    assert "key set" in line
    assert "sk-secret" not in line
    assert "no ANTHROPIC_API_KEY" in describe_model(ModelConfig(spec="anthropic:claude-x"))
    assert "127.0.0.1:11434" in describe_model(ModelConfig(spec="ollama:llama3.2"))


# -- build_model --------------------------------------------------------------------------------


def test_build_echo_by_default() -> None:
    assert isinstance(build_model(ModelConfig()), EchoModel)


def test_build_unknown_spec_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown model spec 'gpt4'"):
        build_model(ModelConfig(spec="gpt4"))


def test_build_openai_without_key_or_server_names_the_variables() -> None:
    with pytest.raises(ValueError, match="OPENAI_API_KEY") as caught:
        build_model(ModelConfig(spec="openai:gpt-4o-mini"))
    assert "OPENAI_BASE_URL" in str(caught.value)


def test_build_anthropic_without_key_names_the_variable() -> None:
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        build_model(ModelConfig(spec="anthropic:claude-sonnet-4-5"))


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(spec="openai:gpt-4o-mini", openai_api_key=SecretStr("sk-x")),
        ModelConfig(spec="anthropic:claude-sonnet-4-5", anthropic_api_key=SecretStr("sk-a")),
        ModelConfig(spec="ollama:llama3.2"),
    ],
)
def test_build_real_providers(config: ModelConfig) -> None:
    model = build_model(config)
    assert isinstance(model, PydanticAIModel)
    assert model.name == config.spec


def test_build_local_checks_the_extra_and_the_file(tmp_path: Path) -> None:
    installed = importlib.util.find_spec("llama_cpp") is not None
    says = "no GGUF file" if installed else r"agenthub\[local\]"
    with pytest.raises(ValueError, match=says):
        build_model(ModelConfig(spec=f"local:{tmp_path / 'm.gguf'}"))


def test_bad_user_tool_fails_at_build_time() -> None:
    config = ModelConfig(spec="ollama:llama3.2", tools=["tests.nowhere:tool"])
    with pytest.raises(ValueError, match=r"cannot import tests\.nowhere"):
        build_model(config)


# -- tools --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("no_colon", "expected an import path"),
        ("pkg.mod:bad-name", "expected an import path"),
        ("tests.nowhere:tool", "cannot import"),
        ("tests.test_runtime_units:missing", "has no attribute 'missing'"),
        ("tests.test_runtime_units:NOT_CALLABLE", "is not callable"),
    ],
)
def test_load_tool_errors(path: str, says: str) -> None:
    with pytest.raises(ValueError, match="tool") as caught:
        load_tool(path)
    assert says in str(caught.value)


def test_tool_with_an_unusable_signature_fails_at_build_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("runtime_bad_tools")
    exec("def lookup(x: 'NoSuchType') -> int:\n    return 1", module.__dict__)
    monkeypatch.setitem(sys.modules, "runtime_bad_tools", module)
    with pytest.raises(ValueError, match="tool 'lookup' cannot be offered to the model"):
        build_tools(["runtime_bad_tools:lookup"])


def test_build_tools_refuses_duplicate_names() -> None:
    with pytest.raises(ValueError, match="two tools are named 'calculator'"):
        build_tools(["hub.providers.tools:calculator"])
    assert [t.name for t in build_tools([], builtins=False)] == []
    assert [t.name for t in build_tools([])] == ["current_time", "calculator"]


def test_current_time() -> None:
    assert current_time("UTC").endswith("+00:00")
    assert "T" in current_time()
    with pytest.raises(ValueError, match="unknown timezone"):
        current_time("Mars/Olympus")


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("sqrt(16) + abs(-2) + max(1, 5) + min(3, 4) + round(2.6)", 17.0),
        ("1e3", 1000.0),
    ],
)
def test_calculator(expression: str, value: float) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("__import__('os').system('true')", "not allowed"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("x + 1", "Name is not allowed"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("1 / 0", "division by zero"),
        ("9 ** 9 ** 9", "exponents are limited"),
        ("10 ** 5000", "too large"),
        ("2.0 ** 5000", "too large"),
        ("(-8) ** 0.5", "not a real number"),
        ("1 +", "not an arithmetic expression"),
        ("1" * 600, "longer than"),
        ("[1, 2]", "List is not allowed"),
        ("1 << 10000", "LShift is not allowed"),
    ],
)
def test_calculator_refuses(expression: str, says: str) -> None:
    with pytest.raises(CalculatorError) as caught:
        calculate(expression)
    assert says in str(caught.value)


# -- history mapping ----------------------------------------------------------------------------


def test_history_merges_text_and_tool_calls_into_provider_turns() -> None:
    context: list[HistoryEntry] = [
        user("hi", 1),
        assistant("let me check", 2),
        tool(3),
        tool(4, is_error=True),
        assistant("done", 5),
        user("failed turn, no reply", 6),
        user("again", 7),
        assistant("", 8),
    ]
    messages = to_model_messages(context)
    shapes = [(type(m).__name__, [type(p).__name__ for p in m.parts]) for m in messages]
    assert shapes == [
        ("ModelRequest", ["UserPromptPart"]),
        ("ModelResponse", ["TextPart", "ToolCallPart"]),
        ("ModelRequest", ["ToolReturnPart"]),
        ("ModelResponse", ["ToolCallPart"]),
        ("ModelRequest", ["ToolReturnPart"]),
        ("ModelResponse", ["TextPart"]),
        ("ModelRequest", ["UserPromptPart", "UserPromptPart"]),
    ]
    call = messages[1].parts[1]
    assert isinstance(call, ToolCallPart)
    assert (call.tool_call_id, call.args) == ("c3", {"expression": "1+1"})
    failed = messages[4].parts[0]
    assert isinstance(failed, ToolReturnPart)
    assert (failed.outcome, failed.content) == ("failed", "boom")


def test_instructions_carry_the_summary() -> None:
    assert instructions("sys", None) == "sys"
    assert instructions("sys", "we talked") == f"sys\n\n{SUMMARY_HEADING}\nwe talked"


# -- the pydantic-ai stream mapping ------------------------------------------------------------


def function_model(
    replies: list[list[str] | DeltaToolCalls], seen: list[list[ModelMessage]]
) -> FunctionModel:
    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        seen.append(list(messages))
        reply = replies.pop(0)
        if isinstance(reply, list):
            for text in reply:
                yield text
        else:
            yield reply

    return FunctionModel(stream_function=stream)


def scripted_model(
    replies: list[list[str] | DeltaToolCalls], *tools: str
) -> tuple[PydanticAIModel, list[list[ModelMessage]]]:
    seen: list[list[ModelMessage]] = []
    model = PydanticAIModel(
        "test:fn",
        function_model(replies, seen),
        endpoint=ENDPOINT,
        system_prompt="be brief",
        tools=build_tools(list(tools)),
    )
    return model, seen


async def test_text_deltas_then_usage() -> None:
    model, seen = scripted_model([["Hel", "lo"]])
    parts = await collect(
        model, turn("hi", [user("before", 1), assistant("earlier", 2)], "old talk")
    )
    assert parts[:2] == [TextDelta("Hel"), TextDelta("lo")]
    usage = parts[-1]
    assert isinstance(usage, UsageReport)
    assert usage.input_tokens > 0
    assert usage.context_tokens == usage.input_tokens + usage.output_tokens
    (messages,) = seen
    assert [type(m) for m in messages] == [ModelRequest, ModelResponse, ModelRequest]
    request = messages[-1]
    assert isinstance(request, ModelRequest)
    prompt = request.parts[-1]
    assert isinstance(prompt, UserPromptPart)
    assert prompt.content == "hi"
    assert request.instructions is not None
    assert "be brief" in request.instructions
    assert "old talk" in request.instructions


async def test_tool_call_and_failed_tool_keep_the_run_going() -> None:
    model, seen = scripted_model(
        [
            {0: DeltaToolCall("calculator", '{"expression": "1/0"}', tool_call_id="c1")},
            {0: DeltaToolCall("calculator", '{"expression": "2*3"}', tool_call_id="c2")},
            ["six"],
        ]
    )
    parts = await collect(model, turn("compute"))
    assert parts[:4] == [
        ToolCallStarted("c1", "calculator", {"expression": "1/0"}),
        ToolCallFinished(
            "c1", "calculator", {"expression": "1/0"}, "CalculatorError: division by zero", True
        ),
        ToolCallStarted("c2", "calculator", {"expression": "2*3"}),
        ToolCallFinished("c2", "calculator", {"expression": "2*3"}, 6, False),
    ]
    assert parts[4] == TextDelta("six")
    returned = seen[1][-1].parts[0]
    assert isinstance(returned, ToolReturnPart)
    assert returned.outcome == "failed"


async def test_model_retry_from_a_tool_is_an_error_result() -> None:
    model, _ = scripted_model(
        [
            {0: DeltaToolCall("flaky_tool", '{"count": 1}', tool_call_id="c1")},
            ["gave up"],
        ],
        "tests.test_runtime_units:flaky_tool",
    )
    parts = await collect(model, turn("go"))
    finished = [p for p in parts if isinstance(p, ToolCallFinished)]
    assert len(finished) == 1
    assert finished[0].is_error
    assert "count 1 is wrong" in json.dumps(finished[0].result)


async def test_invalid_tool_arguments_are_an_error_result() -> None:
    model, _ = scripted_model(
        [
            {0: DeltaToolCall("calculator", '{"wrong": 1}', tool_call_id="c1")},
            ["sorry"],
        ]
    )
    parts = await collect(model, turn("go"))
    finished = [p for p in parts if isinstance(p, ToolCallFinished)]
    assert [f.is_error for f in finished] == [True]


async def test_pydantic_ai_test_model_calls_every_tool() -> None:
    model = PydanticAIModel(
        "test:model",
        TestModel(),
        endpoint=ENDPOINT,
        system_prompt="sys",
        tools=build_tools([]),
    )
    parts = [part async for part in model.stream(turn("use your tools"))]
    started = {p.tool_name for p in parts if isinstance(p, ToolCallStarted)}
    finished = [p for p in parts if isinstance(p, ToolCallFinished)]
    assert started == {"current_time", "calculator"}
    assert len(finished) == 2
    assert any(isinstance(p, TextDelta) for p in parts)
    assert isinstance(parts[-1], UsageReport)


async def test_unusable_model_behaviour_becomes_a_model_error() -> None:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        raise UnexpectedModelBehavior("garbled")
        yield ""

    model = PydanticAIModel(
        "test:fn", FunctionModel(stream_function=stream), endpoint=ENDPOINT, system_prompt="s"
    )
    with pytest.raises(ModelError) as caught:
        await collect(model, turn("hi"))
    assert (caught.value.code, caught.value.retryable) == ("model_behavior", False)


def test_unknown_failures_map_to_internal() -> None:
    error = to_model_error(KeyError("x"), ENDPOINT)
    assert (error.code, error.retryable) == ("internal", False)


def test_retry_policy_backoff_is_bounded_with_jitter() -> None:
    policy = RetryPolicy(max_retries=3, base_delay=1.0, max_delay=3.0)
    transient = ModelError("server_error", "x", retryable=True)
    permanent = ModelError("auth", "x", retryable=False)
    exc = ModelAPIError("m", "x")
    delays = [policy.delay(exc, transient, attempt) for attempt in (1, 2, 3)]
    assert all(d is not None for d in delays)
    assert 0.5 <= delays[0] <= 1.0  # type: ignore[operator]
    assert 1.0 <= delays[1] <= 2.0  # type: ignore[operator]
    assert 1.5 <= delays[2] <= 3.0  # type: ignore[operator]
    assert policy.delay(exc, transient, 4) is None
    assert policy.delay(exc, permanent, 1) is None
    exc.retry_after = 2.5
    assert policy.delay(exc, transient, 1) == 2.5
    exc.retry_after = 60
    assert policy.delay(exc, transient, 1) is None


# -- check_model ---------------------------------------------------------------------------------


async def test_check_model() -> None:
    assert await check_model(EchoModel()) is None
    async with FakeOpenAI() as server:
        config = ModelConfig(spec="openai:gpt-test", openai_base_url=server.base_url)
        assert await check_model(build_model(config)) is None
        assert server.requests[-1].stream is False
        server.enqueue(Fault(401, code="invalid_api_key"))
        problem = await check_model(build_model(config))
    assert problem is not None
    assert problem.startswith("auth:")
    assert "OPENAI_API_KEY" in problem


async def test_check_counts_an_answer_cut_by_the_token_limit_as_working() -> None:
    def thinks_too_long(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[], finish_reason="length")

    model = PydanticAIModel(
        "test:fn", FunctionModel(thinks_too_long), endpoint=ENDPOINT, system_prompt="s"
    )
    assert await check_model(model) is None
