"""The thread executor: a pool of long-lived threads in the engine process."""

from __future__ import annotations

import threading

from tests.conftest import one_step


def test_close_joins_the_thread_pool(make_eventor):
    ev = one_step(make_eventor, lambda: 1, executor="thread")
    assert ev.run()
    ev.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("eventor-")]
