"""Request `attachments.get`: an image a session entry names, for a caller who may read that
session (the same rule as `history`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from hub.attachments import Base64Data
from hub.errors import CodedError
from hub.events import MAIN_SESSION
from hub.requests.sessions import viewer_of_caller
from hub.requests.table import AgentId, Caller, RequestHost, SessionKey, request
from hub.sessions import MessageEntry
from hub.wire import WireModel


class UnknownAttachmentError(CodedError):
    code = "unknown_attachment"


class AttachmentParams(WireModel):
    agent_id: AgentId
    # The `id` of a reference in a session entry's `attachments`.
    attachment_id: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    session_key: SessionKey = MAIN_SESSION
    # An older session of the key; default its current one.
    session_id: SessionKey | None = None


class AttachmentAnswer(WireModel):
    """The image: `data` is its bytes, base64 on the wire."""

    id: str
    name: str
    media_type: str
    data: Base64Data


@request("attachments.get", AttachmentParams, AttachmentAnswer)
async def attachments_get(
    host: RequestHost, caller: Caller, params: AttachmentParams
) -> AttachmentAnswer:
    hub = host.need_hub()
    agent = hub.agent(params.agent_id)
    found = hub.sessions.history(
        agent,
        viewer_of_caller(caller),
        params.session_key,
        limit=None,
        session_id=params.session_id,
    )
    ref = next(
        (
            ref
            for entry in found.entries
            if isinstance(entry, MessageEntry)
            for ref in entry.attachments
            if ref.id == params.attachment_id
        ),
        None,
    )
    missing = f"no attachment {params.attachment_id!r} in session {params.session_key!r}"
    if ref is None:
        raise UnknownAttachmentError(missing)
    try:
        data = hub.media.load(agent.agent_id, ref.id)
    except OSError:
        raise UnknownAttachmentError(
            f"attachment {params.attachment_id!r} is no longer stored"
        ) from None
    return AttachmentAnswer(id=ref.id, name=ref.name, media_type=ref.media_type, data=data)
