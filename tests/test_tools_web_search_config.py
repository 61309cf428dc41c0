"""web_search's configuration: the keys reach the tool and stay secret, a web_search without a
usable service stops start-up naming the key to set, and `agenthub doctor` says the same and
probes the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings
from app.doctor import check_web_search
from app.hub_setup import build_hub, tools_config
from hub.tools.web_search import search_provider, web_search_problem
from tests.cli_process import clean_env, run_cli
from tests.conftest import free_port
from tests.fake_search import FakeSearch

KEY = "brave-test-key-0123456789"


@pytest.fixture
async def search() -> AsyncIterator[FakeSearch]:
    async with FakeSearch(key=KEY) as fake:
        yield fake


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> pytest.MonkeyPatch:
    for name in (
        "AGENTHUB_MODEL",
        "TELEGRAM_BOT_TOKEN",
        "AGENTHUB_ENABLE_TOOLS",
        "BRAVE_API_KEY",
        "TAVILY_API_KEY",
        "AGENTHUB_WEB_SEARCH_URL",
        "AGENTHUB_WEB_SEARCH_PROVIDER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTHUB_DATA_DIR", str(data_dir))
    return monkeypatch


def test_settings_reach_the_tool_and_the_key_stays_secret(env: pytest.MonkeyPatch) -> None:
    env.setenv("BRAVE_API_KEY", KEY)
    env.setenv("AGENTHUB_WEB_SEARCH_URL", "https://user:searx-password@searx.example.org")
    env.setenv("AGENTHUB_WEB_SEARCH_PROVIDER", "searxng")
    settings = load_settings(tool_settings={"web_search_timeout": 3})
    config = tools_config(settings)
    assert config.brave_api_key is not None
    assert config.brave_api_key.get_secret_value() == KEY
    assert (config.web_search_provider, config.web_search_timeout) == ("searxng", 3)
    shown = " ".join(settings.masked().values()) + repr(settings) + repr(config)
    assert KEY not in shown and "searx-password" not in shown
    assert {KEY, "searx-password"} <= set(settings.secrets())


def test_a_single_key_picks_its_service(env: pytest.MonkeyPatch) -> None:
    env.setenv("AGENTHUB_ENABLE_TOOLS", "web_search")
    env.setenv("TAVILY_API_KEY", "tvly-test-key-0123456789")
    settings = load_settings()
    config = tools_config(settings)
    assert (search_provider(config), web_search_problem(config)) == ("tavily", None)
    assert "tvly-test-key-0123456789" in settings.secrets()
    env.setenv("BRAVE_API_KEY", KEY)  # both: Brave first
    assert search_provider(tools_config(load_settings())) == "brave"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            'enable_tools = ["web_search"]',
            "set BRAVE_API_KEY (Brave Search API), TAVILY_API_KEY (Tavily) or web_search_url",
        ),
        (
            'web_search_provider = "brave"\n[tool_policies]\nweb_search = "ask"',
            "web_search uses Brave Search but has no key: set BRAVE_API_KEY",
        ),
        (
            'enable_tools = ["web_search"]\nweb_search_provider = "tavily"',
            "web_search uses Tavily but has no key: set TAVILY_API_KEY",
        ),
        (
            'enable_tools = ["web_search"]\nweb_search_provider = "searxng"',
            "set web_search_url (AGENTHUB_WEB_SEARCH_URL)",
        ),
        (
            '[agents.main]\nmodel = "echo"\nenable_tools = ["web_search"]\n[agents.other]\n',
            "set BRAVE_API_KEY",
        ),
        ('web_search_url = "searx.example.org"', "web_search_url: must start with http://"),
        ('web_search_provider = "google"', "AGENTHUB_WEB_SEARCH_PROVIDER: Input should be"),
    ],
)
def test_web_search_without_a_service_stops_start_up(
    env: pytest.MonkeyPatch, data_dir: Path, toml: str, message: str
) -> None:
    (data_dir / "config.toml").write_text(toml + "\n")
    with pytest.raises(ConfigError) as failure:
        build_hub(load_settings())
    assert message in str(failure.value)


async def test_doctor_names_the_missing_key_and_probes_the_service(
    env: pytest.MonkeyPatch, data_dir: Path, search: FakeSearch
) -> None:
    assert await check_web_search(load_settings()) is None  # off: nothing to check
    env.setenv("AGENTHUB_ENABLE_TOOLS", "web_search")
    missing = await check_web_search(load_settings())
    assert missing is not None and not missing.ok and "set BRAVE_API_KEY" in missing.detail
    env.setenv("AGENTHUB_WEB_SEARCH_PROVIDER", "brave")
    env.setenv("AGENTHUB_WEB_SEARCH_URL", search.brave_url)
    env.setenv("BRAVE_API_KEY", "brave-wrong-key-9876543210")
    refused = await check_web_search(load_settings())
    assert refused is not None and not refused.ok and "refused the API key" in refused.detail
    env.setenv("BRAVE_API_KEY", KEY)
    good = await check_web_search(load_settings())
    assert good is not None and good.ok and good.detail == "Brave Search answers"


@pytest.mark.slow
def test_the_cli_names_the_missing_key_in_serve_and_doctor(data_dir: Path) -> None:
    env = clean_env(data_dir, AGENTHUB_ENABLE_TOOLS="web_search", AGENTHUB_PORT=str(free_port()))
    served = run_cli("serve", env=env)
    assert served.returncode == 2, served.stdout + served.stderr
    assert "web_search is enabled but has no search service: set BRAVE_API_KEY" in served.stderr
    doctor = run_cli("doctor", env=env)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "[FAIL] web search: web_search is enabled but has no search service" in doctor.stdout
