"""The tools the agent offers the model: safe built-ins, plus user tools named by import path
(each call passes `hub.tools.gate.PolicyGate`)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic_ai import Tool

from hub.providers.calculator import Number, calculate

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def current_time(timezone: str | None = None) -> str:
    """The current date and time (ISO 8601), in an IANA timezone like `Europe/Paris`, else local."""
    if timezone:
        try:
            return datetime.now(ZoneInfo(timezone)).isoformat(timespec="seconds")
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {timezone!r}; use an IANA name") from None
    return datetime.now().astimezone().isoformat(timespec="seconds")


def calculator(expression: str) -> Number:
    """Evaluate an arithmetic expression: numbers, + - * / // % **, parentheses, and
    abs, round, min, max, sqrt. Example: `(2 + 3) * 4 ** 2`."""
    return calculate(expression)


BUILTIN_TOOLS: tuple[Callable[..., Any], ...] = (current_time, calculator)


def load_tool(path: str) -> Callable[..., Any]:
    """Import a user tool from `pkg.module:function`. Raises ValueError saying what is wrong."""
    if not _IMPORT_PATH.match(path):
        raise ValueError(f"tool {path!r}: expected an import path like 'mypkg.tools:lookup'")
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(
            f"tool {path!r}: cannot import {module_name} ({type(exc).__name__}: {exc})"
        ) from None
    function = getattr(module, attribute, None)
    if function is None:
        raise ValueError(f"tool {path!r}: {module_name} has no attribute {attribute!r}")
    if not callable(function):
        raise ValueError(f"tool {path!r}: {attribute} is not callable")
    return function  # type: ignore[no-any-return]


def build_tools(paths: Sequence[str], *, builtins: bool = True) -> list[Tool[Any]]:
    """The tool list for the agent, checked now so a bad path fails at start-up."""
    functions = [*(BUILTIN_TOOLS if builtins else ()), *(load_tool(path) for path in paths)]
    tools: list[Tool[Any]] = []
    names: set[str] = set()
    for function in functions:
        try:
            tool: Tool[Any] = Tool(function, takes_ctx=False)
        except Exception as exc:
            raise ValueError(
                f"tool {getattr(function, '__name__', function)!r} cannot be offered to the model: "
                f"{exc}"
            ) from None
        if tool.name in names:
            raise ValueError(f"two tools are named {tool.name!r}; tool names must be unique")
        names.add(tool.name)
        tools.append(tool)
    return tools
