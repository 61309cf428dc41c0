"""The agent's tools beyond the safe built-ins: web fetch, a per-agent workspace with files and
a shell, MCP servers, and the policy (allow | ask | deny) that gates every call.

`config` holds the settings models, `policy` resolves a tool's policy, `gate` enforces it on
every call (asking a person through `hub.approvals` under `ask`), `builtin` assembles the
built-in tools that are switched on, `mcp` runs the configured MCP servers.
"""
