"""web_search against a local fake of the Brave Search API, Tavily and a SearXNG instance: the
results the model sees, every failure (saying what to do, never the key or the service's URL),
and the tool in a real agent run under its policy (its configuration: *_config.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from hub.agent import AsyncAgent
from hub.approvals import Approvals, Decision
from hub.events import ApprovalRequest, ToolExecutionEnd
from hub.providers import ModelConfig, build_model
from hub.sessions import SessionStore
from hub.tools.config import ToolsConfig
from hub.tools.policy import ToolPolicies
from hub.tools.web_search import (
    SearchFailedError,
    WebSearcher,
    plain_text,
)
from tests.agent_turns import only, run_turn
from tests.conftest import free_port
from tests.fake_openai import FakeOpenAI, Reply, ToolCall
from tests.fake_search import Body, FakeSearch, Hang, Hits, Status
from tests.test_tools_approval_flow import decide_when_asked

KEY = "brave-test-key-0123456789"


@pytest.fixture
async def search() -> AsyncIterator[FakeSearch]:
    async with FakeSearch(key=KEY) as fake:
        yield fake


def brave(search: FakeSearch, key: str = KEY, **more: Any) -> WebSearcher:
    return WebSearcher(
        ToolsConfig(
            web_search_provider="brave",
            web_search_url=search.brave_url,
            brave_api_key=SecretStr(key),
            **more,
        )
    )


def tavily(search: FakeSearch, key: str = KEY) -> WebSearcher:
    return WebSearcher(
        ToolsConfig(
            web_search_provider="tavily",
            web_search_url=search.tavily_url,
            tavily_api_key=SecretStr(key),
        )
    )


def searxng(search: FakeSearch) -> WebSearcher:
    return WebSearcher(ToolsConfig(web_search_url=search.searxng_url))


async def test_brave_results_are_a_numbered_list_of_plain_text(search: FakeSearch) -> None:
    text = await brave(search).search("sea otters", count=3)
    assert text == (
        'Results for "sea otters" (Brave Search):\n'
        "\n"
        "1. Sea otter - Wikipedia\n"
        "   https://en.wikipedia.org/wiki/Sea_otter\n"
        "   The sea otter holds hands & sleeps <afloat>.\n"
        "\n"
        "2. Otters hold hands\n"
        "   https://example.org/otters\n"
        "   Why otters hold hands while they sleep.\n"
        "\n"
        "3. Otter facts\n"
        "   https://example.net/facts"
    )
    (seen,) = search.seen
    assert seen.token == KEY
    assert seen.query == {"q": "sea otters", "count": "3"}


async def test_the_count_is_kept_between_1_and_10(search: FakeSearch) -> None:
    searcher = brave(search)
    assert "2. " not in await searcher.search("otters", count=0)
    await searcher.search("otters", count=50)
    assert [s.query["count"] for s in search.seen] == ["1", "10"]


async def test_searxng_results_through_its_json_api(search: FakeSearch) -> None:
    text = await searxng(search).search("otters", count=2)
    assert text.splitlines()[0] == 'Results for "otters" (SearXNG):'
    assert "2. Otters hold hands" in text
    assert "3." not in text  # SearXNG has no count: the list is cut
    (seen,) = search.seen
    assert (seen.path, seen.query, seen.token) == (
        "/search",
        {"q": "otters", "format": "json"},
        None,
    )


async def test_tavily_results(search: FakeSearch) -> None:
    text = await tavily(search).search("otters", count=2)
    assert text.splitlines()[:4] == [
        'Results for "otters" (Tavily):',
        "",
        "1. Sea otter - Wikipedia",
        "   https://en.wikipedia.org/wiki/Sea_otter",
    ]
    (seen,) = search.seen
    assert (seen.token, seen.body) == (f"Bearer {KEY}", {"query": "otters", "max_results": 2})


@pytest.mark.parametrize("make", [brave, tavily, searxng])
async def test_no_results_is_said_plainly(search: FakeSearch, make: Any) -> None:
    search.enqueue(Hits(()))
    text = await make(search).search("xyzzy plugh")
    assert text.startswith('No results for "xyzzy plugh"')
    assert "Try fewer or other words." in text


def test_snippet_html_becomes_text() -> None:
    assert plain_text("a <strong>b</strong> &amp; <em>c</em>\n\t d &#39;e&#39;") == "a b & c d 'e'"
    assert plain_text("line<br>break, <p>para</p>") == "line break, para"
    assert plain_text("1 < 2 and 3 > 2, cut <b") == "1 < 2 and 3 > 2, cut <b"


FAILURES = [
    ("brave", Status(403, {"error": f"token {KEY} not allowed"}), "refused the API key (HTTP 403)"),
    (
        "brave",
        Status(422, {"error": {"code": "SUBSCRIPTION_TOKEN_INVALID", "detail": KEY}}),
        "refused the API key (HTTP 422); check BRAVE_API_KEY",
    ),
    ("brave", Status(429), "rate limited by Brave Search (HTTP 429): wait"),
    ("brave", Status(500), "Brave Search answered HTTP 500; try again later"),
    ("brave", Body("<html>oops</html>", "text/html"), "not the JSON expected"),
    ("brave", Body('{"web": {"results": [{"title": 3}]}}'), "not the JSON expected"),
    ("tavily", Status(401), "Tavily refused the API key (HTTP 401); check TAVILY_API_KEY"),
    ("tavily", Status(432), "the Tavily plan's usage limit is reached (HTTP 432)"),
    ("tavily", Status(429), "rate limited by Tavily (HTTP 429)"),
    ("tavily", Body('{"results": {"url": 1}}'), "not the JSON expected"),
    ("searxng", Body('{"answers": []}'), "not the JSON expected"),
    ("searxng", Status(403), "refused the request (HTTP 403); its JSON API may be off: add json"),
    ("searxng", Status(429), "rate limited by SearXNG (HTTP 429)"),
    ("searxng", Status(401), "wants credentials (HTTP 401); put them in web_search_url"),
]


@pytest.mark.parametrize(("provider", "plan", "message"), FAILURES)
async def test_failures_say_what_happened_and_what_to_do(
    search: FakeSearch, caplog: pytest.LogCaptureFixture, provider: str, plan: Any, message: str
) -> None:
    caplog.set_level(logging.DEBUG)
    search.enqueue(plan)
    searcher = {"brave": brave, "tavily": tavily, "searxng": searxng}[provider](search)
    with pytest.raises(SearchFailedError, match="web search") as failure:
        await searcher.search("otters")
    assert message in str(failure.value)
    assert_no_leak(str(failure.value), search)
    assert KEY not in caplog.text


def assert_no_leak(text: str, search: FakeSearch) -> None:
    assert KEY not in text
    assert str(search.port) not in text and "127.0.0.1" not in text


@pytest.mark.parametrize("make", [brave, tavily])
async def test_a_wrong_key_is_refused_without_repeating_it(
    search: FakeSearch, caplog: pytest.LogCaptureFixture, make: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "brave-wrong-key-9876543210"
    with pytest.raises(SearchFailedError, match=r"refused the API key \(HTTP 401\)") as failure:
        await make(search, key=wrong).search("otters")
    assert wrong not in str(failure.value) and wrong not in caplog.text
    assert wrong in str(search.seen[0].token)


async def test_a_service_that_does_not_answer_times_out(search: FakeSearch) -> None:
    search.enqueue(Hang())
    with pytest.raises(SearchFailedError, match=r"did not answer within 0\.5 s") as failure:
        await brave(search, web_search_timeout=0.5).search("otters")
    assert "raise web_search_timeout" in str(failure.value)
    assert_no_leak(str(failure.value), search)


async def test_an_unreachable_service_is_named_without_its_address() -> None:
    port = free_port()
    searcher = WebSearcher(ToolsConfig(web_search_url=f"http://127.0.0.1:{port}"))
    with pytest.raises(SearchFailedError, match="could not reach SearXNG") as failure:
        await searcher.search("otters")
    assert str(port) not in str(failure.value)


async def test_an_empty_query_is_refused_before_any_request(search: FakeSearch) -> None:
    with pytest.raises(SearchFailedError, match="needs a query"):
        await brave(search).search("   ")
    assert search.seen == []


# The tool in a real agent run: the real openai client against the fake model server.


@pytest.fixture
async def model_server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def agent_for(
    model_server: FakeOpenAI,
    search: FakeSearch,
    data_dir: Path,
    approvals: Approvals | None,
    **tooling: Any,
) -> AsyncAgent:
    config = ModelConfig.model_validate(
        {
            "spec": "openai:gpt-test",
            "openai_base_url": model_server.base_url,
            "tooling": {
                "web_search_provider": "brave",
                "web_search_url": search.brave_url,
                "brave_api_key": KEY,
                **tooling,
            },
        }
    )
    return AsyncAgent("main", build_model(config, approvals=approvals), SessionStore(data_dir))


def search_call(model_server: FakeOpenAI, args: dict[str, Any]) -> None:
    model_server.enqueue(
        Reply(chunks=(), tool_calls=(ToolCall("web_search", json.dumps(args)),)),
        Reply(chunks=("Otters hold hands.",)),
    )


async def test_the_model_searches_and_reads_the_results(
    model_server: FakeOpenAI, search: FakeSearch, data_dir: Path
) -> None:
    agent = agent_for(model_server, search, data_dir, Approvals(), enable_tools=["web_search"])
    search_call(model_server, {"query": "why do otters hold hands", "count": 2})
    events = await run_turn(agent, "why do otters hold hands?")
    assert not any(isinstance(e, ApprovalRequest) for e in events)  # allow by default
    end = only(events, ToolExecutionEnd)
    assert not end.is_error
    assert str(end.result).startswith('Results for "why do otters hold hands" (Brave Search):')
    tool_message = model_server.requests[1].messages[-1]
    assert tool_message["role"] == "tool"
    assert "1. Sea otter - Wikipedia" in str(tool_message["content"])
    assert "3." not in str(tool_message["content"])
    offered = {t["function"]["name"] for t in model_server.requests[0].tools}  # type: ignore[call-overload,index]
    assert "web_search" in offered
    await agent.close()


async def test_a_failed_search_reaches_the_model_as_a_failed_result(
    model_server: FakeOpenAI, search: FakeSearch, data_dir: Path
) -> None:
    agent = agent_for(model_server, search, data_dir, Approvals(), enable_tools=["web_search"])
    search.enqueue(Status(429))
    search_call(model_server, {"query": "otters"})
    events = await run_turn(agent, "otters?")
    end = only(events, ToolExecutionEnd)
    assert end.is_error and "rate limited" in str(end.result)
    assert KEY not in json.dumps(model_server.requests[1].messages)
    await agent.close()


@pytest.mark.parametrize("decision", ["approve", "deny"])
async def test_policy_ask_waits_for_a_person(
    model_server: FakeOpenAI, search: FakeSearch, data_dir: Path, decision: Decision
) -> None:
    approvals = Approvals()
    agent = agent_for(
        model_server, search, data_dir, approvals, tool_policies={"web_search": "ask"}
    )
    asked = decide_when_asked(agent, approvals, decision)
    search_call(model_server, {"query": "otters"})
    events = await run_turn(agent, "otters?")
    (request,) = asked
    assert (request.tool, request.args) == ("web_search", {"query": "otters", "count": 5})
    result = str(only(events, ToolExecutionEnd).result)
    if decision == "deny":
        assert "web_search was not run: denied by ctl" in result
        assert search.seen == []
    else:
        assert result.startswith('Results for "otters"')
        assert len(search.seen) == 1
    await agent.close()


async def test_policy_deny_leaves_web_search_unoffered(
    model_server: FakeOpenAI, search: FakeSearch, data_dir: Path
) -> None:
    agent = agent_for(
        model_server,
        search,
        data_dir,
        Approvals(),
        enable_tools=["web_search"],
        tool_policies={"web_search": "deny"},
    )
    model_server.enqueue(Reply(chunks=("ok",)))
    await run_turn(agent, "hi")
    offered = {t["function"]["name"] for t in model_server.requests[0].tools}  # type: ignore[call-overload,index]
    assert "web_search" not in offered
    await agent.close()


def test_web_search_is_off_and_allowed_by_default() -> None:
    assert ToolPolicies.from_config(ToolsConfig()).policy("web_search") == "allow"
