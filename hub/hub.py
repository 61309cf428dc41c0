"""The Hub: the agents, their session store, access records, health and lastRoute.

Surfaces receive a Hub from the composition root (`app/`) and never construct one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from hub.access import AccessStore
from hub.agent import AsyncAgent
from hub.approvals import Approvals
from hub.attachments import Attachment, TurnImage, prepare_turn
from hub.bindings import Binding, bound_agent
from hub.conversations import Conversations, ForbiddenSessionError
from hub.errors import UnknownAgentError
from hub.events import MAIN_SESSION
from hub.health import HealthRegistry, SubsystemHealth
from hub.lanes import WriteMode
from hub.media_store import MediaStore
from hub.model import Compactor, Model
from hub.origin import ChannelRoute, Origin
from hub.routes import LastRoute
from hub.scopes import (
    ConversationConfig,
    Viewer,
    channel_session_key,
    memory_scope,
    viewer_of,
)
from hub.sessions import SessionStore
from hub.transcribe import Transcriber, hear
from hub.wire import WireModel

log = logging.getLogger("agenthub.hub")

DEFAULT_AGENT_ID = "main"


class AgentInfo(WireModel):
    agent_id: str
    name: str
    model: str
    busy: bool
    queued: int
    session_id: str
    last_seq: int


@dataclass(frozen=True, slots=True)
class Submitted:
    """An accepted message: its run, and the transcripts of its recordings."""

    run_id: str
    transcripts: tuple[str, ...]


@dataclass(frozen=True)
class AgentSetup:
    """One configured agent: its id, the name people see, its model and compactor, and the
    other models a session may switch to (`models`)."""

    agent_id: str
    name: str
    model: Model
    compactor: Compactor | None = None
    models: tuple[Model, ...] = ()


class Hub:
    """Owns one AsyncAgent per agent id and the state every surface shares.

    Agents come from `agents` (each with its own model) or, without it, `model_factory` is
    called once per id of `agent_ids` (and `compactor_factory` once per model). `bindings`
    pick the agent of an inbound chat message.
    """

    def __init__(
        self,
        data_dir: Path,
        model_factory: Callable[[], Model] | None = None,
        *,
        agent_ids: tuple[str, ...] = (DEFAULT_AGENT_ID,),
        compactor_factory: Callable[[Model], Compactor | None] | None = None,
        approvals: Approvals | None = None,
        conversations: ConversationConfig | None = None,
        agents: Sequence[AgentSetup] = (),
        bindings: Sequence[Binding] = (),
    ) -> None:
        self.data_dir = data_dir
        self.conversation_config = conversations or ConversationConfig()
        # Tool calls waiting for a person; the model's tools ask through the same object.
        self.approvals = approvals or Approvals()
        self.store = SessionStore(data_dir)
        self.media = MediaStore(data_dir)
        # Speech to text for voice notes (`hub.transcribe`); the composition root sets it.
        self.transcriber: Transcriber | None = None
        self.access = AccessStore(data_dir / "access.json")
        self.health = HealthRegistry()
        self.last_route = LastRoute()
        setups = list(agents)
        if not setups:
            assert model_factory is not None, "a Hub needs agents or a model factory"
            for agent_id in agent_ids:
                model = model_factory()
                compactor = compactor_factory(model) if compactor_factory else None
                setups.append(AgentSetup(agent_id, agent_id, model, compactor))
        self.names = {setup.agent_id: setup.name for setup in setups}
        unknown = sorted({b.agent for b in bindings} - set(self.names))
        if unknown:
            raise UnknownAgentError(unknown[0])
        self.bindings = tuple(bindings)
        self.agents: dict[str, AsyncAgent] = {}
        for setup in setups:
            self.agents[setup.agent_id] = AsyncAgent(
                setup.agent_id,
                setup.model,
                self.store,
                compactor=setup.compactor,
                models=setup.models,
                max_concurrent_runs=self.conversation_config.max_concurrent_runs,
            )
        for agent in self.agents.values():
            agent.memory_scope = partial(self.whose_memory, agent)
        self.sessions = Conversations(self.agents, self.conversation_config)
        self.health.register("model", self._model_health)
        for agent_id in self.agents:
            self._sweep_media(agent_id)

    @property
    def default_agent(self) -> AsyncAgent:
        return next(iter(self.agents.values()))

    def agent(self, agent_id: str) -> AsyncAgent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise UnknownAgentError(agent_id) from None

    def scope_config(self) -> ConversationConfig:
        """The session rules in force: the configured ones, with the chat users approved as
        the owner (`ctl pair approve --owner`) counted as owners too."""
        approved = self.access.owner_identities()
        config = self.conversation_config
        if not approved:
            return config
        return config.model_copy(update={"owners": (config.owners or frozenset()) | approved})

    def whose_memory(self, agent: AsyncAgent, session_key: str) -> str:
        """Whose notes `agent` keeps in session `session_key` (`hub.scopes.memory_scope`)."""
        meta = agent.sessions.meta(session_key)
        members = meta.members if meta is not None else ()
        return memory_scope(session_key, members, self.scope_config())

    def agent_for(self, route: ChannelRoute) -> str:
        """The agent a chat message goes to: the first binding that matches, else the
        default agent."""
        return bound_agent(self.bindings, route, self.default_agent.agent_id)

    def session_key_for(self, origin: Origin, session_key: str | None = None) -> str:
        """The session a message from `origin` goes to (`hub.scopes`): a channel message's by
        the rules, a desktop or web one's as named (default `main`)."""
        if origin.route is None:
            return MAIN_SESSION if session_key is None else session_key
        key = channel_session_key(origin.route, self.scope_config())
        if session_key is not None and session_key != key:
            raise ForbiddenSessionError("a chat message goes to its chat's session only")
        return key

    def submit(
        self,
        agent_id: str,
        text: str,
        origin: Origin,
        *,
        session_key: str | None = None,
        mode: WriteMode | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> str:
        """The one way into an agent: queue `text` as a turn of its session and return the
        run id. `attachments` are read by the rules of `hub.attachments` (text files and PDFs
        join the text, images go with the turn; audio is transcribed before, `hub.transcribe`).

        The session is `session_key_for(origin, session_key)`; a guest may write only to
        sessions they take part in. In `main`, an accepted channel message makes its chat the
        lastRoute and an accepted desktop or web message clears it (the person has moved to
        the window or the browser); other sessions leave it alone, and so do turns the hub
        starts itself (`origin.source` other than `user`). Raises `UnknownAgentError`,
        `forbidden` / `invalid_session_key`, and whatever `AsyncAgent.write` refuses with
        (all `CodedError`), and `MediaRefused` for an attachment the rules refuse.
        """
        agent = self.agent(agent_id)
        if origin.source != "user":
            # A turn the hub starts itself (schedule, heartbeat, recovery) runs in the session
            # it names; its route only says where the reply goes, and lastRoute and session
            # membership stay as they are.
            key = MAIN_SESSION if session_key is None else session_key
            return agent.write(text, origin, session_key=key, mode=mode)
        key, viewer = self._check_write(agent, origin, session_key)
        images: tuple[TurnImage, ...] = ()
        if attachments:
            prepared = prepare_turn(text, attachments, self.media, agent.agent_id)
            text, images = prepared.text, prepared.images
        config = self.conversation_config
        hold = (config.debounce_idle, config.debounce_cap) if origin.route is not None else None
        chat = agent.sessions.chat_of(key) if origin.route is None else None
        if chat is not None:
            # A chat's session answers in its chat, whoever writes there.
            origin = origin.model_copy(update={"route": chat})
        run_id = agent.write(text, origin, session_key=key, mode=mode, hold=hold, images=images)
        agent.sessions.join(key, viewer.reader_id, route=None if chat else origin.route)
        if key == MAIN_SESSION:
            if origin.route is not None and origin.surface == "channel":
                self.last_route.set(origin.route)
            else:
                self.last_route.clear()
        return run_id

    async def submit_heard(
        self,
        agent_id: str,
        text: str,
        origin: Origin,
        *,
        session_key: str | None = None,
        mode: WriteMode | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> Submitted:
        """`submit` for a person's message that may hold recordings: the write check comes
        first (a message that would be refused costs no transcription), then audio becomes
        text (`hub.transcribe.hear`). Returns the run id and what was heard, to show the
        person. Raises what `submit` and `hear` raise."""
        self._check_write(self.agent(agent_id), origin, session_key)
        heard = await hear(self.transcriber, text, attachments)
        run_id = self.submit(
            agent_id,
            heard.text,
            origin,
            session_key=session_key,
            mode=mode,
            attachments=heard.attachments,
        )
        return Submitted(run_id, heard.transcripts)

    def _check_write(
        self, agent: AsyncAgent, origin: Origin, session_key: str | None
    ) -> tuple[str, Viewer]:
        """The session a person's message goes to and who they are there; raises when they
        may not write to it (a chat message may: its chat was authorised on arrival)."""
        key = self.session_key_for(origin, session_key)
        viewer = viewer_of(origin, self.scope_config())
        if origin.route is None:
            self.sessions.check_write(agent, viewer, key)
        return key, viewer

    def agents_info(self) -> list[AgentInfo]:
        return [
            AgentInfo(
                agent_id=a.agent_id,
                name=self.names[a.agent_id],
                model=a.model.name,
                busy=a.busy,
                queued=a.queued,
                session_id=a.session.session_id,
                last_seq=a.last_seq,
            )
            for a in self.agents.values()
        ]

    def _sweep_media(self, agent_id: str) -> None:
        """Delete stored images no session names (a turn refused after storing them), once
        they are older than `hub.attachments.SWEEP_GRACE`."""
        try:
            swept = self.media.sweep(agent_id, self.store.agent_dir(agent_id).glob("*.jsonl"))
        except OSError as exc:
            log.warning("agent %s: stored images not swept (%s)", agent_id, exc)
            return
        if swept:
            log.info("agent %s: deleted %d stored image(s) no session names", agent_id, len(swept))

    def _model_health(self) -> SubsystemHealth:
        runs = [a.last_run for a in self.agents.values() if a.last_run is not None]
        names = ", ".join(sorted({a.model.name for a in self.agents.values()}))
        if not runs:
            return SubsystemHealth(name="model", status="ok", detail=f"{names}: no run yet")
        last = max(runs, key=lambda r: r.finished_at)
        if last.status == "failed":
            return SubsystemHealth(
                name="model",
                status="degraded",
                detail=f"{names}: last run failed ({last.error_code})",
            )
        return SubsystemHealth(name="model", status="ok", detail=f"{names}: last run {last.status}")

    async def close(self, *, grace: float = 0.0) -> None:
        """Drain every agent (runs get `grace` seconds, then are aborted). Pending approvals
        are denied first, so a run waiting for one records the refusal and can finish."""
        self.approvals.close()
        await asyncio.gather(*(a.close(grace=grace) for a in self.agents.values()))
        if self.transcriber is not None:
            await self.transcriber.close()
