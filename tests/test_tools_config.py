"""Tool settings from config.toml: policies, built-in switches, MCP servers, and what is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings
from app.hub_setup import tools_config
from hub.tools.config import McpServerConfig
from hub.tools.policy import ToolPolicies, enabled_builtins

TOML = """
enable_tools = ["web_fetch", "workspace"]

[tool_policies]
shell = "ask"
write_file = "allow"
"files.delete" = "deny"
"files.*" = "allow"

[[mcp_servers]]
name = "files"
command = "python"
args = ["-m", "server"]
env = { API_KEY = "k-123" }

[[mcp_servers]]
name = "remote"
url = "https://mcp.example.org/mcp"
headers = { Authorization = "REMOTE_MCP_TOKEN" }
agents = ["main"]
"""


def write(data_dir: Path, text: str) -> Path:
    path = data_dir / "config.toml"
    path.write_text(text)
    return path


def test_toml_sections_reach_the_tools_config(data_dir: Path) -> None:
    settings = load_settings(write(data_dir, TOML), data_dir=data_dir)
    config = tools_config(settings)
    assert config.workspace_root == data_dir / "workspace"
    assert enabled_builtins(config) == [
        "web_fetch",
        "read_file",
        "write_file",
        "edit_file",
        "list_files",
        "shell",
    ]
    policies = ToolPolicies.from_config(config)
    assert policies.policy("shell") == "ask"
    assert policies.policy("write_file") == "allow"
    assert policies.policy("edit_file") == "ask"
    assert policies.policy("read_file") == "allow"
    assert policies.policy("delete", server="files") == "allow"  # "files.*"
    assert policies.policy("files.delete", server="files") == "deny"
    assert policies.policy("remote.search", server="remote") == "ask"
    files, remote = config.mcp_servers
    assert (files.transport, files.env, files.serves("other")) == (
        "stdio",
        {"API_KEY": "k-123"},
        True,
    )
    assert (remote.transport, remote.serves("main"), remote.serves("other")) == (
        "http",
        True,
        False,
    )
    # Shown configuration names the servers, never their environment.
    assert settings.masked()["mcp_servers"] == "files,remote"
    assert "k-123" not in str(settings.masked())


def test_builtins_are_off_unless_configured(data_dir: Path) -> None:
    config = tools_config(load_settings(data_dir=data_dir))
    assert enabled_builtins(config) == []


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ('[tool_policies]\nshell = "maybe"\n', "tool_policies"),
        ('enable_tools = ["rm"]\n', "unknown tool 'rm'"),
        ('[[mcp_servers]]\nname = "x"\n', "give either command (stdio) or url (HTTP)"),
        ('[[mcp_servers]]\nname = "x"\nurl = "file:///x"\n', "url must start with http"),
        (
            '[[mcp_servers]]\nname = "x"\nurl = "http://h/mcp"\nheaders = { A = "not a name" }\n',
            "must name an environment variable",
        ),
        ('[[mcp_servers]]\nname = "bad name"\ncommand = "x"\n', "mcp_servers"),
    ],
)
def test_bad_tool_settings_say_what_is_wrong(data_dir: Path, toml: str, names: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(names)):
        tools_config(load_settings(write(data_dir, toml), data_dir=data_dir))


def test_two_servers_with_one_name_are_refused(data_dir: Path) -> None:
    toml = (
        '[[mcp_servers]]\nname = "a"\ncommand = "x"\n[[mcp_servers]]\nname = "a"\ncommand = "y"\n'
    )
    with pytest.raises(ConfigError, match="two mcp servers are named 'a'"):
        tools_config(load_settings(write(data_dir, toml), data_dir=data_dir))


def test_a_bad_server_entry_does_not_echo_its_env(data_dir: Path) -> None:
    toml = '[[mcp_servers]]\nname = "x"\nenv = { KEY = "sk-very-secret" }\n'
    with pytest.raises(ConfigError) as refused:
        load_settings(write(data_dir, toml), data_dir=data_dir)
    assert "sk-very-secret" not in str(refused.value)
    assert McpServerConfig(name="s", command="python").transport == "stdio"


def test_tool_settings_tune_the_limits(data_dir: Path) -> None:
    toml = (
        "[tool_settings]\nshell_timeout = 5\napproval_timeout = 60\n"
        'web_fetch_allow_networks = ["192.168.1.0/24"]\n'
    )
    config = tools_config(load_settings(write(data_dir, toml), data_dir=data_dir))
    assert (config.shell_timeout, config.approval_timeout) == (5, 60)
    assert [str(n) for n in config.web_fetch_allow_networks] == ["192.168.1.0/24"]


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ("[tool_settings]\nshell_timeuot = 5\n", "unknown key 'shell_timeuot'"),
        ("[tool_settings]\nenable_tools = ['shell']\n", "unknown key 'enable_tools'"),
        ("[tool_settings]\nshell_timeout = -1\n", "shell_timeout"),
        ('[tool_settings]\nweb_fetch_allow_networks = ["not a network"]\n', "web_fetch_allow"),
    ],
)
def test_bad_tool_settings_are_refused(data_dir: Path, toml: str, names: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(names)):
        tools_config(load_settings(write(data_dir, toml), data_dir=data_dir))
