"""The service's parts wired together once per process (or per test)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from service.clock import Clock, utcnow

if TYPE_CHECKING:  # imported when services are built, not when the API module loads
    from service.dispatch import Dispatcher, Provisioners
    from service.scheduler import Scheduler
    from service.settings import Settings
    from service.store.base import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    clock: Clock
    provisioners: Provisioners
    dispatcher: Dispatcher
    scheduler: Scheduler
    #: Tells the server loop to recompute when to tick (a retry or a run became due
    #: sooner); set by the loop, a no-op where there is none (Lambda, the CLI).
    wake: Callable[[], None] = field(default=lambda: None)


def build_services(
    settings: Settings, store: Store | None = None, clock: Clock = utcnow
) -> Services:
    from service.dispatch import Dispatcher, Provisioners
    from service.scheduler import Scheduler

    if store is None:
        from service.store import open_store

        store = open_store(settings)
    provisioners = Provisioners(
        {
            "process": {
                "working_dir": str(settings.home / "runs"),
                "result_storage": str(settings.home / "results"),
            }
        },
        shared=store,
    )
    dispatcher = Dispatcher(store, settings, clock, provisioners)
    return Services(settings, store, clock, provisioners, dispatcher, Scheduler(dispatcher))
