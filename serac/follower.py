"""StoreFollower: keeps an editor's scope index in step with a store that other processes write.

Every request already syncs the index before deciding scope (``EditedModel.route``), so correctness
never depends on this thread. What it buys a replica on a shared store is that the catch-up happens
when another replica commits (woken by the store's notifications, e.g. PostgreSQL LISTEN/NOTIFY),
not inside the next request. A store without notifications (no ``wait_for_change``) needs no
follower; if the notifications stop, the wait times out every ``poll_s`` and the follower polls.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)


class StoreFollower:
    def __init__(self, editor: Any, poll_s: float = 5.0) -> None:
        self.editor = editor
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def supported(store: Any) -> bool:
        return callable(getattr(store, "wait_for_change", None))

    def start(self) -> "StoreFollower":
        self._thread = threading.Thread(target=self._run, name="serac-store-follower", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        store = self.editor.store
        seen, last_sync = -1, 0.0
        while not self._stop.is_set():
            try:
                # Short waits, so stop() is prompt; a sync on a change, or every poll_s regardless.
                changed = store.wait_for_change(seen, timeout=min(0.5, self.poll_s))
                if self._stop.is_set():
                    return
                if not changed and time.monotonic() - last_sync < self.poll_s:
                    continue
                last_sync = time.monotonic()
                seen = store.version  # read before the sync: a write racing it wakes the next wait
                self.editor.sync()
            except Exception as exc:  # the store is down: requests report it; retry after a pause
                logger.warning("store follower could not sync: %s", exc)
                self._stop.wait(self.poll_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 5)
