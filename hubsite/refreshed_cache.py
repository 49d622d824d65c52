"""Values that are costly to compute, cached and refreshed behind the request.

``cache.get_or_set`` makes the request that finds an entry expired pay for
computing it again: every web process, every few minutes, one user waits
for a count over the whole registry (a quarter of a second at 100,000
modules). Here an expired value is still answered at once, and one thread
of the process computes the new one meanwhile; only a process that has
never computed the value does so in the request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache
from django.db import connections

T = TypeVar("T")

logger = logging.getLogger(__name__)

# Stale values stay this long at most; past it, a request computes afresh.
KEEP_STALE_SECONDS = 24 * 3600

_refreshing: set[str] = set()
_refreshing_lock = threading.Lock()


def refreshed_value(key: str, compute: Callable[[], T], fresh_seconds: float) -> T:
    """The cached value of ``key``; older than ``fresh_seconds``, refreshed in the background."""
    entry = cache.get(key)
    if entry is None:
        return _store(key, compute())
    computed_at, value = entry
    if time.time() - computed_at > fresh_seconds:
        _refresh_in_background(key, compute)
    return value


def _store(key: str, value: T) -> T:
    cache.set(key, (time.time(), value), KEEP_STALE_SECONDS)
    return value


def _refresh_in_background(key: str, compute: Callable[[], object]) -> None:
    with _refreshing_lock:
        if key in _refreshing:
            return  # another thread of this process is on it
        _refreshing.add(key)
    threading.Thread(target=_refresh, args=(key, compute), daemon=True).start()


def _refresh(key: str, compute: Callable[[], object]) -> None:
    try:
        _store(key, compute())
    except Exception:
        # The stale value keeps being answered; the next request tries again.
        logger.exception("refreshing the cached %s failed", key)
    finally:
        with _refreshing_lock:
            _refreshing.discard(key)
        # This thread's own database connections would otherwise stay open.
        connections.close_all()
