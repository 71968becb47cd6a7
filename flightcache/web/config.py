"""What the web application serves from: the servers, the key prefix, the access token.

``serve`` resolves these once, like every command, and hands them to the app. With
``--workers N`` uvicorn starts the app in N processes by import string, so the
settings travel to them in one environment variable (:data:`ENV`), readable only by
this account (``/proc/<pid>/environ`` is mode 0400). They are never put in a page.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

ENV = "FLIGHTCACHE_WEB_SETTINGS"


@dataclass(frozen=True)
class WebConfig:
    db_url: str  # with its password: only the servers ever see it
    valkey_url: str
    key_prefix: str
    token: str  # the access token every request must carry (cookie or ?token=)
    secure_cookies: bool = False  # True when served over TLS
    display_db: str = ""  # the database URL with its password replaced by ***
    display_valkey: str = ""

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> WebConfig:
        raw = os.environ.get(ENV)
        if not raw:
            raise RuntimeError(f"{ENV} is not set: start the app with `flightcache serve`")
        return cls(**json.loads(raw))
