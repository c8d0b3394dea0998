"""Property-based run over the OpenAPI schema, in-process: no request may cause a 5xx.

The app is built once for the module (schemathesis collects operations at import);
its pools are paused so generated runs are stored but never start processes.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from service.app import create_app
from service.bootstrap import ensure_admin_key, ensure_default_pool
from service.pools import WorkPoolCreate, create_pool
from service.services import build_services
from service.settings import Settings

_home = Path(tempfile.mkdtemp(prefix="pushpool-schemathesis-"))
atexit.register(shutil.rmtree, _home, ignore_errors=True)
_services = build_services(Settings(home=_home))
atexit.register(_services.store.close)
_KEY = ensure_admin_key(_services)
ensure_default_pool(_services)
_services.store.update_pool("local", {"paused": True}, _services.clock())
create_pool(_services, WorkPoolCreate(name="other", type="process", paused=True))

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_services))


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors(case: Any) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {_KEY}"}
    case.call_and_validate(checks=[not_a_server_error])
