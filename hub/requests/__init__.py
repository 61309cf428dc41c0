"""The hub's request surface: one table (`table.py`) and the modules that fill it.

Importing this package registers every request; surfaces call `dispatch`.
"""

from hub.requests import access, agents, approvals, messages, sessions, tokens
from hub.requests.table import (
    REQUESTS,
    Caller,
    ConnectedDevice,
    NoParams,
    Request,
    RequestHost,
    dispatch,
    request,
)

__all__ = [
    "REQUESTS",
    "Caller",
    "ConnectedDevice",
    "NoParams",
    "Request",
    "RequestHost",
    "access",
    "agents",
    "approvals",
    "dispatch",
    "messages",
    "request",
    "sessions",
    "tokens",
]
