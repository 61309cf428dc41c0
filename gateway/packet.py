"""The gateway's Socket.IO packet class: JSON by pydantic-core, no binary scan.

python-socketio encodes every outgoing packet with the standard `json` module and first walks
the whole payload looking for bytes (binary attachments). The gateway protocol is JSON text
only, so this class skips the walk and uses pydantic-core's encoder and parser, which cuts
the relay's CPU per frame. Incoming binary packets still decode (and then fail validation).
"""

from __future__ import annotations

from pydantic import JsonValue
from pydantic_core import from_json, to_json
from socketio.packet import Packet


class _Json:
    """The two functions python-socketio calls on its `json` module."""

    @staticmethod
    def dumps(data: object, **_options: object) -> str:
        return to_json(data).decode()

    @staticmethod
    def loads(text: str | bytes, **_options: object) -> JsonValue:
        value: JsonValue = from_json(text)
        return value


class JsonPacket(Packet):  # type: ignore[misc]
    uses_binary_events = False
    json = _Json
