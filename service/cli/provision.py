"""Pool infrastructure from the CLI: plan, confirm, apply with progress, record; and undo.

Runs on the user's machine with the user's cloud credentials; only the resulting config
(ARNs, ids — no credentials) is sent to the server.
"""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from provisioners.base import PlanStep, Provisioner, ProvisionPlan, get_provisioner
from service.cli.client import CliError


def local_provisioner(pool_type: str, name: str, config: dict[str, Any]) -> Provisioner:
    try:
        return get_provisioner(pool_type, name, config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CliError(f"config.{where}: {first['msg']}") from None
    except ValueError as exc:  # an unknown pool type
        raise CliError(str(exc)) from None


def plan_table(plan: ProvisionPlan) -> Table:
    table = Table("resource", "status", "detail")
    table.columns[0].overflow = "fold"
    for step in plan.steps:
        status = "[green]exists[/green]" if step.exists else "[yellow]will create[/yellow]"
        table.add_row(f"{step.resource} [bold]{step.name}[/bold]", status, step.detail)
    return table


def show_plan(console: Console, plan: ProvisionPlan) -> None:
    if not plan.steps:
        console.print("This pool type needs no infrastructure.")
    elif plan.empty:
        console.print(plan_table(plan))
        console.print("Nothing to create: everything already exists.")
    else:
        console.print(plan_table(plan))
        console.print(f"{len(plan.to_create)} resource(s) to create.")


def show_notes(console: Console, provisioner: Provisioner) -> None:
    for title, text in provisioner.setup_notes().items():
        console.print(f"\n[bold]{title}[/bold]")
        console.out(text, highlight=False)


def confirm(yes: bool) -> None:
    if not yes and not typer.confirm("Create these resources?", default=False):
        raise CliError("aborted; nothing was created")


def _step_label(step: PlanStep) -> str:
    return f"{step.resource} {step.name}"


def apply(console: Console, provisioner: Provisioner, plan: ProvisionPlan) -> dict[str, Any]:
    """Create what the plan lacks, one progress line per resource; return config to record."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("provisioning…", total=len(plan.to_create))

        def progress(step: PlanStep) -> None:
            bar.console.print(f"[green]created[/green] {_step_label(step)}")
            bar.update(task, advance=1, description=f"created {_step_label(step)}")

        return provisioner.provision(plan, progress)


def destroy(console: Console, provisioner: Provisioner) -> None:
    columns = (SpinnerColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True) as bar:
        bar.add_task("removing pool infrastructure…", total=None)

        def progress(step: PlanStep) -> None:
            bar.console.print(f"[red]removed[/red] {_step_label(step)}")

        provisioner.deprovision(progress)
