"""``pushpool automation create|ls|inspect|pause|resume|delete``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from service.automation_records import describe_trigger as describe
from service.cli.client import CliError, client_from_env

app = typer.Typer(
    help="Automations: a trigger (events) and actions (run, pause, cancel, notify).",
    no_args_is_help=True,
)
console = Console(soft_wrap=True, highlight=False)
NameArg = Annotated[str, typer.Argument(help="The automation's name")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="table or json")]


def _load(path: Path) -> dict[str, Any]:
    """The automation in a YAML (or JSON) file; ``CliError`` naming the problem."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"{path}: cannot read it as YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise CliError(f"{path}: must hold one automation (a mapping)")
    return doc


def _dump(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


@app.command("create")
def create(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="automation.yaml to create", exists=True)
    ],
) -> None:
    """Create an automation from a YAML file."""
    made = client_from_env().post("/automations", json=_load(file))
    console.print(f"Created automation {made['name']} ({len(made['actions'])} action(s))")


@app.command("ls")
def list_automations(output: OutputOpt = "table") -> None:
    """Every automation."""
    items = client_from_env().get("/automations")
    if output == "json":
        _dump(items)
        return
    table = Table("name", "trigger", "actions", "paused", box=None)
    for a in items:
        actions = ", ".join(x["type"] for x in a["actions"])
        table.add_row(a["name"], describe(a["trigger"]), actions, "yes" if a["paused"] else "")
    console.print(table if items else "No automations.")


@app.command("inspect")
def inspect(
    name: NameArg,
    output: OutputOpt = "table",
    limit: Annotated[int, typer.Option(help="How many recent firings/outcomes to show")] = 20,
) -> None:
    """An automation and its recent firings and action outcomes (newest first)."""
    client = client_from_env()
    automation = client.get(f"/automations/{name}")
    params = {"resource": f"pushpool.automation.{name}", "limit": limit}
    history = client.get("/events", params=params)["items"]
    if output == "json":
        _dump({"automation": automation, "events": history})
        return
    console.print_json(json.dumps(automation))
    table = Table("occurred", "event", "action", "detail", box=None)
    for e in history:
        action, detail = _outcome(e["payload"])
        table.add_row(e["occurred"], e["name"].removeprefix("pushpool.automation."), action, detail)
    console.print(table if history else "No firings yet.")


def _outcome(payload: dict[str, Any]) -> tuple[str, str]:
    """An event's action (``index: type``) and the rest of its payload, short."""
    rest = {k: v for k, v in payload.items() if k not in {"firing", "action", "index"}}
    action = f"{payload['index']}: {payload['action']}" if "action" in payload else ""
    return action, json.dumps(rest)[:120]


@app.command("pause")
def pause(name: NameArg) -> None:
    """Stop reacting to events."""
    client_from_env().post(f"/automations/{name}/pause")
    console.print(f"Paused automation {name}")


@app.command("resume")
def resume(name: NameArg) -> None:
    """React to events again."""
    client_from_env().post(f"/automations/{name}/resume")
    console.print(f"Resumed automation {name}")


@app.command("delete")
def delete(name: NameArg) -> None:
    """Delete an automation (actions it queued still run)."""
    client_from_env().request("DELETE", f"/automations/{name}")
    console.print(f"Deleted automation {name}")
