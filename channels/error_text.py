"""The one mapping from a failure to the text a chat user sees.

A chat shows `[Error] <what failed and what to do>`. The message comes from the failure
itself (`CodedError.message`, an `agent_error`'s `message`), which already names the fix;
this only makes it safe to show: URLs, host names and key-like strings are replaced, since
a chat is not the place for the provider's address or a credential, and an unexpected
failure says where to look.
"""

from __future__ import annotations

import re

from hub.errors import CodedError

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_AT_URL = re.compile(r"\s+(?:at|on|to|from|via)\s+[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_HOST = re.compile(
    r"\b(?:localhost|(?:\d{1,3}\.){3}\d{1,3}|(?:[a-z0-9-]+\.)+"
    r"(?:com|net|org|io|ai|dev|app|cloud|co|xyz|internal|local|lan))(?::\d{1,5})?\b",
    re.IGNORECASE,
)
_KEY = re.compile(
    r"\b(?:sk|pk|rk|gsk|xai|key)-[A-Za-z0-9_-]{8,}|\b\d{5,}:[A-Za-z0-9_-]{20,}|\b[A-Za-z0-9_-]{40,}"
)
_UNEXPECTED = "Try again; if it keeps happening, ask the bot's owner to check the hub's log."


def scrub(text: str) -> str:
    """`text` without URLs, host names or key-like strings."""
    text = _AT_URL.sub("", text)
    text = _URL.sub("the provider", text)
    text = _HOST.sub("the provider", text)
    return _KEY.sub("[redacted]", text)


def error_text(code: str, message: str) -> str:
    """The chat text for a failure with a stable `code` and a human `message`."""
    text = scrub(message).strip() or "something went wrong"
    if code == "internal":
        text = f"{text}. {_UNEXPECTED}"
    return f"[Error] {text}"


def coded_error_text(exc: CodedError) -> str:
    return error_text(exc.code, exc.message)
