# The reference solution of the near-cache exercise: the code that goes between the
# markers of ../near_cache.py, where the docstrings say what each method does.
# `flightcache exercise solution near-cache` shows it.
# START near-cache
class NearStore:
    """Values by key, in this process, under ``max_entries`` and ``max_bytes``."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, str] = OrderedDict()  # least recently used first
        self.bytes = 0
        # moved by every invalidation and every loss of tracking: a ticket is the
        # version it was taken at, and a fetch is kept only if nothing moved it since
        self.version = 0

    def lookup(self, key: str) -> str | None:
        with self.lock:
            value = self.entries.get(key)
            if value is not None:
                self.entries.move_to_end(key)  # most recently used last
            return value

    def ticket(self, key: str) -> Any:
        with self.lock:
            return self.version

    def keep(self, ticket: Any, key: str, value: str) -> bool:
        with self.lock:
            if ticket != self.version or len(value) > self.max_bytes:
                return False  # raced a change or a loss of tracking; or can never fit
            self._drop(key)
            while self.entries and (
                len(self.entries) >= self.max_entries
                or self.bytes + len(value) > self.max_bytes
            ):
                _, evicted = self.entries.popitem(last=False)  # the least recently used
                self.bytes -= len(evicted)
            self.entries[key] = value
            self.bytes += len(value)
            return True

    def on_invalidate(self, keys: list[str]) -> None:
        with self.lock:
            self.version += 1
            for key in keys:
                self._drop(key)

    def on_tracking_lost(self) -> None:
        with self.lock:
            self.version += 1
            self.entries.clear()
            self.bytes = 0

    def _drop(self, key: str) -> None:
        value = self.entries.pop(key, None)
        if value is not None:
            self.bytes -= len(value)


# END near-cache
