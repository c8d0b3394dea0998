"""``pushpool events ls|follow``: the service's events, newest first or as they come."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from service.cli.client import ApiClient, client_from_env

app = typer.Typer(help="Events: what happened, newest first or live.", no_args_is_help=True)
console = Console(soft_wrap=True, highlight=False)

NameOpt = Annotated[
    list[str] | None,
    typer.Option("--name", "-n", help="Event name pattern ('*' matches anything); repeatable"),
]
ResourceOpt = Annotated[
    str | None,
    typer.Option("--resource", "-r", help="Resource id pattern, e.g. 'pushpool.flow-run.*'"),
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option("--label", "-l", help="key=value the resource's labels must have; repeatable"),
]
#: One poll of ``follow`` reads at most this many events.
FOLLOW_PAGE = 500


def _params(
    names: list[str] | None, resource: str | None, labels: list[str] | None
) -> dict[str, Any]:
    params: dict[str, Any] = {"name": names or [], "label": labels or []}
    if resource:
        params["resource"] = resource
    return params


def _payload(event: dict[str, Any]) -> str:
    text = json.dumps(event.get("payload") or {}, separators=(",", ":"), default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _table(items: list[dict[str, Any]]) -> Table:
    table = Table("occurred", "name", "resource", "payload", box=None)
    for e in items:
        table.add_row(e["occurred"], e["name"], e["resource"]["id"], _payload(e))
    return table


def _line(event: dict[str, Any]) -> str:
    return f"{event['occurred']}  {event['name']}  {event['resource']['id']}  {_payload(event)}"


@app.command("ls")
def list_events(
    name: NameOpt = None,
    resource: ResourceOpt = None,
    label: LabelOpt = None,
    since: Annotated[
        datetime | None, typer.Option(help="Occurred at or after this time (UTC if no zone)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many")] = 20,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    """The newest events matching the filters, newest first."""
    if output not in ("table", "json"):
        raise typer.BadParameter("must be table or json", param_hint="--output")
    params = _params(name, resource, label) | {"limit": limit}
    if since is not None:
        params["since"] = _aware(since).isoformat()
    items = client_from_env().get("/events", params=params)["items"]
    if output == "json":
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
    elif items:
        console.print(_table(items))
    else:
        console.print("No events.")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@app.command("follow")
def follow(
    name: NameOpt = None,
    resource: ResourceOpt = None,
    label: LabelOpt = None,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls")] = 2.0,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many seconds (default: never)")
    ] = None,
) -> None:
    """Print matching events as they happen, oldest first, until Ctrl-C (or --timeout)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    watch(client_from_env(), _params(name, resource, label), interval, deadline, print)


def watch(
    client: ApiClient,
    params: dict[str, Any],
    interval: float,
    deadline: float | None,
    emit: Callable[[str], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Poll for events newer than the newest one now, emitting each once, oldest first."""
    newest = client.get("/events", params=params | {"limit": 1})["items"]
    since = newest[0]["occurred"] if newest else None
    #: ids already emitted (or present at start) that occurred at ``since``: the next
    #: poll (``occurred >= since``) lists them again.
    seen = {e["id"]: e["occurred"] for e in newest}
    while deadline is None or monotonic() < deadline:
        query = params | {"limit": FOLLOW_PAGE} | ({"since": since} if since else {})
        fresh = [e for e in client.get("/events", params=query)["items"] if e["id"] not in seen]
        for event in reversed(fresh):
            emit(_line(event))
        if fresh:
            since = fresh[0]["occurred"]
            seen |= {e["id"]: e["occurred"] for e in fresh}
            seen = {i: at for i, at in seen.items() if at == since}
        sleep(interval)
