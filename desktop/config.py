"""The desktop surface's own configuration, built by the composition root from Settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"


class DesktopConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path
    web_root: Path = WEB_ROOT
    title: str = "agenthub"
    # One push script per animation frame at most; 0 with max_push_items=1 is unbatched.
    push_interval: Annotated[float, Field(ge=0, le=1)] = 0.016
    max_push_items: Annotated[int, Field(ge=1)] = 10_000
    call_timeout: Annotated[float, Field(gt=0)] = 10.0
    pairing_poll: Annotated[float, Field(gt=0)] = 1.0
    debug: bool = False

    @property
    def index_html(self) -> Path:
        return self.web_root / "index.html"
