"""What a command runs against: settings resolved once, servers opened on demand.

Commands never build URLs or clients themselves; they ask the :class:`App`.
When a URL is not configured, the embedded stack of the state directory supplies
it, and a stack that is down is reported with the command that starts it: a
command never starts servers behind the user's back (``flightcache up`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from flightcache import config
from flightcache.config import DbUrl, Settings, ValkeyUrl

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.stack import Stack
    from flightcache.valkey_client import Client


@dataclass
class GlobalOptions:
    db_url: str | None = None
    valkey_url: str | None = None
    state_dir: Path | None = None
    config_file: Path | None = None
    key_prefix: str | None = None


class App:
    def __init__(
        self, options: GlobalOptions, run: Callable[[list[str]], int] | None = None
    ) -> None:
        self.options = options
        self.run = run
        """The CLI's ``main``, handed down by ``cli.py`` so that a command can run another
        as if typed (the workshop's tours) without importing the layer above it."""

    @cached_property
    def settings(self) -> Settings:
        return config.resolve(
            db_url=self.options.db_url,
            valkey_url=self.options.valkey_url,
            state_dir=self.options.state_dir,
            config_file=self.options.config_file,
            key_prefix=self.options.key_prefix,
        )

    @cached_property
    def stack(self) -> Stack:
        from flightcache.platforms import advice, gaps

        missing = gaps(["valkey", "postgres"])
        if len(missing) == 2:  # not POSIX (Windows): the stack's code does not even import
            from flightcache.errors import StackError

            raise StackError(advice(missing))
        from flightcache.stack import Stack

        return Stack(self.settings.state_dir)

    def db_url(self) -> DbUrl:
        return self.settings.db_url or self.stack.db_url()

    def valkey_url(self) -> ValkeyUrl:
        return self.settings.valkey_url or self.stack.valkey_url()

    def database(self, *, create: bool = False, loader: bool = False) -> Database:
        """A connection; ``loader`` only for `data load`/`import` (LOAD DATA LOCAL, no
        statement timeout)."""
        from flightcache.db import connect

        return connect(self.db_url(), create=create, loader=loader)

    def valkey(self, *, decode: bool = True) -> Client:
        """A client; first, settings a killed demo left changed on it are put back."""
        from flightcache.valkey_client import connect

        client = connect(self.valkey_url(), decode=decode)
        self._put_back_settings(client)
        return client

    def _put_back_settings(self, client: Client) -> None:
        from flightcache.console import err, styled
        from flightcache.undo import repair_settings
        from flightcache.valkey_client import primaries

        for line in repair_settings(self.settings.state_dir, primaries(client)):
            err.print(styled("[yellow]{}[/yellow]", line), soft_wrap=True)
