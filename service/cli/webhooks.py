"""``pushpool webhook create|ls|delete``: URLs that turn calls into events."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from service.cli.client import CliError, client_from_env

app = typer.Typer(help="Webhooks: URLs that turn calls into events.", no_args_is_help=True)
console = Console(soft_wrap=True, highlight=False)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The webhook's name")],
    template: Annotated[
        str | None, typer.Option(help="Jinja2 template rendering the event as JSON")
    ] = None,
    template_file: Annotated[
        Path | None, typer.Option(help="Read the template from this file", exists=True)
    ] = None,
    signature: Annotated[
        str, typer.Option(help="HMAC check: none, github (X-Hub-Signature-256) or stripe")
    ] = "none",
    secret: Annotated[
        str | None,
        typer.Option(envvar="PUSHPOOL_WEBHOOK_SECRET", help="The HMAC secret (or that env var)"),
    ] = None,
) -> None:
    """Create a webhook and print its URL (keep it private: it needs no key)."""
    if (template is None) == (template_file is None):
        raise CliError("give exactly one of --template and --template-file")
    text = template if template is not None else Path(str(template_file)).read_text()
    body = {"name": name, "template": text, "signature": signature, "secret": secret}
    client = client_from_env()
    made = client.post("/webhooks", json=body)
    console.print(f"Created webhook {name}: POST {client.url}/api/hooks/{made['slug']}")


@app.command("ls")
def list_webhooks(
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    """Every webhook with its URL."""
    client = client_from_env()
    hooks = client.get("/webhooks")
    if output == "json":
        sys.stdout.write(json.dumps(hooks, indent=2) + "\n")
        return
    table = Table("name", "signature", "url", box=None)
    for h in hooks:
        table.add_row(h["name"], h["signature"], f"{client.url}/api/hooks/{h['slug']}")
    console.print(table if hooks else "No webhooks.")


@app.command("delete")
def delete(name: Annotated[str, typer.Argument(help="The webhook's name")]) -> None:
    """Delete a webhook: its URL stops working at once."""
    client_from_env().request("DELETE", f"/webhooks/{name}")
    console.print(f"Deleted webhook {name}")
