"""The hub's request surface: one table (`table.py`) and the modules that fill it.

Importing this package registers every request; surfaces call `dispatch`.
"""

from hub.requests import (
    access,
    agents,
    approvals,
    attachments,
    mail,
    memory,
    messages,
    schedules,
    sessions,
    tokens,
    usage,
)
from hub.requests.table import (
    REQUESTS,
    Caller,
    ConnectedDevice,
    NoParams,
    Request,
    RequestHost,
    RunEvents,
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
    "RunEvents",
    "access",
    "agents",
    "approvals",
    "attachments",
    "dispatch",
    "mail",
    "memory",
    "messages",
    "request",
    "schedules",
    "sessions",
    "tokens",
    "usage",
]
