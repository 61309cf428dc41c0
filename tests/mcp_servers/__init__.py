"""MCP servers the tests run as real subprocesses, written with the official `mcp` SDK."""
