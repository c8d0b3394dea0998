"""The ``pushpool`` command line."""

from __future__ import annotations

import json
import re
import sys
import time
from collections import deque
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from provisioners.errors import PushpoolError
from service.cli import (
    automations,
    blocks,
    db,
    events,
    helpstyle,
    inputs,
    pools,
    provision,
    webhooks,
)
from service.cli.client import ApiClient, CliError, client_from_env
from service.cli.introspect import flow_defaults, parameter_schema
from service.cli.terminal import strip_escapes

helpstyle.install()


class _Root(TyperGroup):
    """Turns a :class:`CliError` anywhere below into one line on stderr and exit code 1."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (Typer vendors its own click)
        try:
            return super().invoke(ctx)
        except (CliError, PushpoolError) as exc:
            err_console.print(f"[red]Error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Root,
    help="pushpool: push flow runs to serverless infrastructure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
server_app = typer.Typer(help="Run the control plane.", no_args_is_help=True)
pool_app = typer.Typer(help="Work pools.", no_args_is_help=True)
deployment_app = typer.Typer(help="Deployments.", no_args_is_help=True)
runs_app = typer.Typer(help="Flow runs.", no_args_is_help=True)
scheduler_app = typer.Typer(help="The scheduler.", no_args_is_help=True)
key_app = typer.Typer(help="API keys.", no_args_is_help=True)
admin_app = typer.Typer(
    help="Work on this machine's store directly (no API, no key).", no_args_is_help=True
)
service_app = typer.Typer(help="The control plane's AWS stack.", no_args_is_help=True)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.out(f"pushpool {version('pushpool')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """pushpool: push flow runs to serverless infrastructure."""


limit_app = typer.Typer(help="Tag concurrency limits for tasks.", no_args_is_help=True)


app.add_typer(server_app, name="server")
app.add_typer(pool_app, name="work-pool")
app.add_typer(deployment_app, name="deployment")
app.add_typer(limit_app, name="concurrency-limit")  # sdk
app.add_typer(runs_app, name="runs")
app.add_typer(scheduler_app, name="scheduler")
app.add_typer(key_app, name="api-key")
app.add_typer(admin_app, name="admin")
app.add_typer(service_app, name="service")
app.add_typer(db.app, name="db")
app.add_typer(blocks.app, name="block")
admin_app.command("rotate-blocks-key")(blocks.rotate_key)
app.add_typer(events.app, name="events")
app.add_typer(webhooks.app, name="webhook")
app.add_typer(automations.app, name="automation")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
STATE_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CRASHED": "red",
    "CANCELLED": "yellow",
    "CANCELLING": "yellow",
    "RUNNING": "cyan",
    "PENDING": "blue",
    "SCHEDULED": "dim",
}


class Output(StrEnum):
    table = "table"
    json = "json"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json")]


def _client() -> ApiClient:
    return client_from_env()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _parse_kv(
    pairs: list[str] | None, what: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``k=v`` pairs. A value is JSON if it parses as JSON, else a string — except that a
    parameter the schema types as a string is always taken as written."""
    properties = (schema or {}).get("properties", {})
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CliError(f"{what} {pair!r} is not of the form key=value")
        if properties.get(key, {}).get("type") == "string":
            out[key] = raw
            continue
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _state(run: dict[str, Any]) -> str:
    state = run["state"]
    style = STATE_STYLE.get(state["type"], "")
    label = (
        state["type"]
        if state["name"].upper() == state["type"]
        else f"{state['type']} ({state['name']})"
    )
    return f"[{style}]{label}[/{style}]" if style else label


# -- server -----------------------------------------------------------------------------
@server_app.command("start")
def server_start(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 4300)")] = None,
    deploy: Annotated[
        list[str] | None,
        typer.Option(help="Entrypoint (file.py:function) to deploy on the `local` pool at start"),
    ] = None,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help="Refuse to start unless the schema is current")
    ] = False,
) -> None:
    """Start the API and the scheduler (SQLite and the `local` process pool by default)."""
    import uvicorn

    from service.app import create_app
    from service.bootstrap import (
        credentials_path,
        default_pool_warning,
        ensure_admin_key,
        ensure_default_pool,
    )
    from service.services import build_services
    from service.settings import get_settings
    from service.store import open_store

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = get_settings(**overrides)
    store = open_store(settings, schema="check" if no_migrate else "migrate")
    svc = build_services(settings, store)
    if ensure_admin_key(svc) is not None:
        err_console.print(
            "[bold]Created the admin API key[/bold]: saved to "
            f"{credentials_path(settings.home)} (mode 0600), where the CLI finds it"
        )
    if ensure_default_pool(svc):
        err_console.print(
            f"Created work pool [bold]local[/bold] (type process; local sources under {Path.cwd()})"
        )
    elif (warning := default_pool_warning(svc)) is not None:
        err_console.print(f"[yellow]Warning:[/yellow] {warning}", markup=True, highlight=False)
    for entrypoint in deploy or []:
        _deploy_in_process(svc, entrypoint)
    err_console.print(
        f"pushpool API on http://{settings.host}:{settings.port}/api "
        f"(docs at /docs); data in {settings.home}\n"
        f"Dashboard on http://{settings.host}:{settings.port}/ (sign in with an API key: "
        f"the admin key is in {credentials_path(settings.home)})"
    )
    uvicorn.run(
        create_app(svc, run_scheduler=True),
        host=settings.host,
        port=settings.port,
        log_level="warning",
    )


def _deploy_in_process(svc: Any, entrypoint: str) -> None:
    """Deploy ``entrypoint`` as ``FUNCTION/example``, unless that exists: a restart keeps
    whatever the user changed in it."""
    from service.deployments import DeploymentCreate, deploy
    from service.errors import InvalidInput

    body = _deployment_body(entrypoint, "example", "local", None, None, None, None, None, [])
    try:
        kept = svc.store.find_deployment(body["flow_name"], "example")
    except LookupError:
        kept = None
    if kept is not None:
        err_console.print(
            f"Kept deployment [bold]{kept.flow_name}/{kept.name}[/bold] as it is "
            f"(redeploy it with: pushpool deploy {entrypoint} --name example)"
        )
        return
    try:
        deployment, _ = deploy(svc, DeploymentCreate.model_validate(body))
    except InvalidInput as exc:  # e.g. an old `local` pool without source roots: serve anyway
        err_console.print(f"[yellow]Not deployed[/yellow] {entrypoint}: {exc}", highlight=False)
        return
    err_console.print(
        f"Deployed [bold]{deployment.flow_name}/{deployment.name}[/bold] on pool local; "
        f"run it with: pushpool run {deployment.flow_name}/{deployment.name} --watch"
    )


# -- work pools -------------------------------------------------------------------------
def _pool_table(pools: list[dict[str, Any]]) -> Table:
    table = Table("name", "type", "concurrency", "paused", "config")
    for p in pools:
        table.add_row(
            p["name"],
            p["type"],
            str(p["concurrency_limit"] or "-"),
            "yes" if p["paused"] else "no",
            json.dumps(p["config"]),
        )
    return table


@pool_app.command("create")
def pool_create(
    name: Annotated[str, typer.Argument(help="Work pool name")],
    type_: Annotated[str, typer.Option("--type", help="Pool type, e.g. process")] = "process",
    config: Annotated[str | None, typer.Option(help="Pool config as a JSON object")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config key=value")] = None,
    concurrency_limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many runs in the pool at once")
    ] = None,
    paused: Annotated[
        bool, typer.Option("--paused", help="Create it paused: no run starts until resumed")
    ] = False,
    provision_infra: Annotated[
        bool, typer.Option(help="Create the infrastructure the pool needs, with your credentials")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    dry_run: Annotated[bool, typer.Option(help="Show the plan and stop")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Create a work pool (and, with --provision-infra, what it runs on)."""
    cfg: dict[str, Any] = {}
    if config:
        try:
            cfg = json.loads(config)
        except ValueError as exc:
            raise CliError(f"--config is not valid JSON: {exc}") from None
        if not isinstance(cfg, dict):
            raise CliError("--config must be a JSON object")
    cfg.update(_parse_kv(set_, "--set"))
    body = {"name": name, "type": type_, "config": cfg, "paused": paused}
    if concurrency_limit is not None:
        body["concurrency_limit"] = concurrency_limit
    client = _client()
    provisioner, plan = None, None
    if provision_infra or dry_run:
        provisioner = provision.local_provisioner(type_, name, cfg)
        plan = provisioner.plan()
        provision.show_plan(console, plan)
        if dry_run:
            return
        if not plan.empty:
            provision.confirm(yes)
    pool = client.post("/work-pools", json=body)
    console.print(f"Created work pool [bold]{pool['name']}[/bold] ({pool['type']})")
    if provisioner is not None and plan is not None and not plan.empty:
        pool = _record(client, pool, provision.apply(console, provisioner, plan))
    if output == Output.json:
        _print_json(pool)


def _record(client: ApiClient, pool: dict[str, Any], created: dict[str, Any]) -> dict[str, Any]:
    config = {**pool["config"], **created}
    updated: dict[str, Any] = client.request(
        "PATCH", f"/work-pools/{pool['name']}", json={"config": config}
    )
    console.print(f"Recorded the infrastructure in work pool [bold]{pool['name']}[/bold]")
    provisioned = provision.local_provisioner(updated["type"], updated["name"], updated["config"])
    provision.show_notes(console, provisioned)
    return updated


@pool_app.command("provision-infra")
def pool_provision_infra(
    name: Annotated[str, typer.Argument(help="Work pool name")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    dry_run: Annotated[bool, typer.Option(help="Show the plan and stop")] = False,
) -> None:
    """Create (or complete) the infrastructure of an existing pool."""
    client = _client()
    pool = client.get(f"/work-pools/{name}")
    provisioner = provision.local_provisioner(pool["type"], name, pool["config"])
    plan = provisioner.plan()
    provision.show_plan(console, plan)
    if dry_run or plan.empty:
        return
    provision.confirm(yes)
    _record(client, pool, provision.apply(console, provisioner, plan))


@pool_app.command("ls")
def pool_ls(output: OutputOpt = Output.table) -> None:
    """List work pools."""
    pools = _client().get("/work-pools")
    _print_json(pools) if output == Output.json else console.print(_pool_table(pools))


@pool_app.command("inspect")
def pool_inspect(
    name: Annotated[str, typer.Argument(help="Work pool name")], output: OutputOpt = Output.table
) -> None:
    """Show one work pool."""
    pool = _client().get(f"/work-pools/{name}")
    _print_json(pool) if output == Output.json else console.print(_pool_table([pool]))


def _set_pool_paused(name: str, paused: bool) -> None:
    pool = _client().request("PATCH", f"/work-pools/{name}", json={"paused": paused})
    state = "paused: its runs wait until resumed" if paused else "resumed"
    console.print(f"Work pool [bold]{pool['name']}[/bold] {state}")


@pool_app.command("pause")
def pool_pause(name: Annotated[str, typer.Argument(help="Work pool name")]) -> None:
    """Pause a work pool: none of its runs start until it is resumed."""
    _set_pool_paused(name, True)


@pool_app.command("resume")
def pool_resume(name: Annotated[str, typer.Argument(help="Work pool name")]) -> None:
    """Resume a paused work pool."""
    _set_pool_paused(name, False)


pool_app.command("update")(pools.pool_update)


@pool_app.command("delete")
def pool_delete(
    name: Annotated[str, typer.Argument(help="Work pool name")],
    deprovision: Annotated[
        bool, typer.Option(help="Also remove the infrastructure --provision-infra created")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete a work pool (it must have no deployments and no runs in progress)."""
    client = _client()
    if deprovision:
        pool = client.get(f"/work-pools/{name}")
        users = client.get("/deployments", params={"work_pool": name})
        if users:
            raise CliError(f"work pool {name!r} is used by {len(users)} deployment(s)")
        if not yes and not typer.confirm(
            f"Remove the infrastructure of pool {name!r}?", default=False
        ):
            raise CliError("aborted; nothing was removed")
        provisioner = provision.local_provisioner(pool["type"], name, pool["config"])
        provision.destroy(console, provisioner)
    client.request("DELETE", f"/work-pools/{name}")
    console.print(f"Deleted work pool [bold]{name}[/bold]")


# -- deploy -------------------------------------------------------------------------------
_GIT_URL = re.compile(r"^(https?://|ssh://|git@|file://)")


def _deployment_body(
    entrypoint: str,
    name: str,
    pool: str,
    source: str | None,
    ref: str | None,
    cron: str | None,
    timezone: str | None,
    interval: int | None,
    params: list[str] | None,
    image: str | None = None,
) -> dict[str, Any]:
    file_part, sep, function = entrypoint.rpartition(":")
    if not sep or not file_part.endswith(".py") or not function:
        raise CliError(f"entrypoint {entrypoint!r} must look like path/to/file.py:function")
    body: dict[str, Any] = {"name": name, "work_pool": pool}
    if timezone and not cron:
        raise CliError("--timezone applies to --cron; give --cron too (intervals ignore it)")
    if image is not None:
        body.update(_image_source(image, source, ref, file_part, function))
    else:
        body.update(_code_source(source, ref, file_part, function))
    if cron and interval is not None:
        raise CliError("give --cron or --interval, not both")
    if cron:
        body["schedules"] = [{"kind": "cron", "cron": cron, "timezone": timezone or "UTC"}]
    elif interval is not None:
        body["schedules"] = [{"kind": "interval", "interval_seconds": interval}]
    body["parameters"] = _parse_kv(params, "--param", body.get("parameter_schema"))
    return body


def _image_source(
    image: str, source: str | None, ref: str | None, file_part: str, function: str
) -> dict[str, Any]:
    """An ``image`` source: the code is in IMAGE, at ENTRYPOINT relative to its working
    directory. Nothing is read here; the first run records the parameter schema."""
    if source is not None or ref is not None:
        raise CliError("--image carries the code: give it without --source or --ref")
    if not image.strip() or image != image.strip():
        raise CliError(f"--image {image!r} is not an image reference")
    if PurePosixPath(file_part).is_absolute() or ".." in PurePosixPath(file_part).parts:
        raise CliError(f"entrypoint {file_part!r} must be relative to the image's directory")
    return {
        "source": {"type": "image"},
        "entrypoint": f"{file_part}:{function}",
        "flow_name": function,
        "job_variables": {"image": image},
    }


def _code_source(
    source: str | None, ref: str | None, file_part: str, function: str
) -> dict[str, Any]:
    """A git or local source, with the schema and defaults read from its code."""
    body: dict[str, Any] = {}
    if ref and not (source and _GIT_URL.match(source)):
        raise CliError("--ref applies to a git --source")
    if source is not None and _GIT_URL.match(source):
        body["source"] = {"type": "git", "url": source, "ref": ref}
        root = Path.cwd()
    else:
        root = Path(source or ".").resolve()
        if not root.is_dir():
            raise CliError(f"source {root} is not a directory")
        body["source"] = {"type": "local", "path": str(root)}
    path = Path(file_part)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(root)
        except ValueError:
            raise CliError(f"{file_part} is not inside the source directory {root}") from None
    body["entrypoint"] = f"{path.as_posix()}:{function}"
    body["flow_name"] = function
    if body["source"]["type"] == "git":
        body.update(_git_flow_facts(source or "", ref, path, function))
    else:
        local_file = root / path
        if local_file.exists():
            inputs.check_inside(root, path)
        if not local_file.is_file():
            raise CliError(f"{local_file} does not exist")
        body.update(_flow_facts(local_file, function))
    return body


def _flow_facts(file: Path, function: str) -> dict[str, Any]:
    """The parameter schema and the ``@flow(...)`` defaults read from ``file``."""
    return {"parameter_schema": parameter_schema(file, function)} | flow_defaults(file, function)


def _git_flow_facts(url: str, ref: str | None, path: Path, function: str) -> dict[str, Any]:
    """:func:`_flow_facts` of the entrypoint as ``ref`` of the repository has it: the
    code its runs will check out, not whatever lies in the current directory."""
    inputs.check_git_source(url, ref)
    with (
        console.status(f"reading {path.as_posix()} at {ref or 'HEAD'} of {url}…"),
        inputs.git_checkout(url, ref) as checkout,
    ):
        if not (checkout / path).is_file():
            raise CliError(f"{path.as_posix()} is not in git source {url} at {ref or 'HEAD'}")
        inputs.check_inside(checkout, path)
        return _flow_facts(checkout / path, function)


@app.command("deploy")
def deploy(
    entrypoint: Annotated[str, typer.Argument(help="path/to/file.py:function")],
    name: Annotated[str, typer.Option(help="Deployment name")],
    pool: Annotated[str, typer.Option(help="Work pool")] = "local",
    flow_name: Annotated[str | None, typer.Option(help="Flow name (default: the function)")] = None,
    cron: Annotated[
        str | None, typer.Option(help="Cron schedule: 5 fields, classic (Vixie) cron rules")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA timezone for --cron (default UTC)")
    ] = None,
    interval: Annotated[
        int | None, typer.Option(min=1, help="Interval schedule: every N whole seconds")
    ] = None,
    clear_schedules: Annotated[
        bool,
        typer.Option(
            "--clear-schedules",
            help="Remove the deployment's schedules (a redeploy without --cron or --interval "
            "keeps them)",
        ),
    ] = False,
    param: Annotated[list[str] | None, typer.Option(help="Default parameter key=value")] = None,
    source: Annotated[
        str | None, typer.Option(help="Directory, or git URL, holding the code (default: .)")
    ] = None,
    ref: Annotated[str | None, typer.Option(help="Git ref for a git source")] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="Container image holding the code (ENTRYPOINT relative to its working "
            "directory); the first run records the parameter schema"
        ),
    ] = None,
    catchup: Annotated[str | None, typer.Option(help="Missed runs: all, latest or none")] = None,
    retries: Annotated[
        int | None, typer.Option(min=0, help="Times a failed or crashed run is retried (0)")
    ] = None,
    retry_delay: Annotated[
        int | None, typer.Option(min=0, help="Seconds between retries (0)")
    ] = None,
    concurrency_limit: Annotated[
        int | None,
        typer.Option(min=1, help="At most this many runs of the deployment at once (no limit)"),
    ] = None,
    env: Annotated[list[str] | None, typer.Option(help="Environment variable key=value")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag for the deployment's runs")] = None,
    block: Annotated[
        list[str] | None,
        typer.Option(help="A block (type/name) the flow may load; repeat (default: kept)"),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(help="Stop a run still running after this long (30m, 2h): FAILED"),
    ] = None,
    paused: Annotated[
        bool, typer.Option("--paused", help="Deploy paused: no scheduled runs until resumed")
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Create or update a deployment of a flow function; a redeploy prints what changed."""
    body = _deployment_body(
        entrypoint, name, pool, source, ref, cron, timezone, interval, param, image
    )
    if flow_name:
        body["flow_name"] = flow_name
    optional = {
        "catchup": catchup,
        "retries": retries,
        "retry_delay_seconds": retry_delay,
        "concurrency_limit": concurrency_limit,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if env:
        variables = body.setdefault("job_variables", {})
        variables["env"] = {k: str(v) for k, v in _parse_kv(env, "--env").items()}
    if tag:
        body["tags"] = tag
    if timeout:
        body["timeout_seconds"] = round(inputs.parse_duration(timeout, "--timeout").total_seconds())
    body["paused"] = paused
    client = _client()
    old = _existing_deployment(client, body["flow_name"], name)
    if old is not None and "schedules" not in body and not clear_schedules:
        body["schedules"] = old["schedules"]  # kept: only --clear-schedules removes them
    if block is not None:
        body["blocks"] = block
    elif old is not None:
        body["blocks"] = old.get("blocks", [])  # blocks: kept unless --block is given
    deployment = client.post("/deployments", json=body)
    if output == Output.json:
        _print_json(deployment)
        return
    verb = "Deployed" if old is None else "Updated"
    console.print(
        f"{verb} [bold]{deployment['flow_name']}/{deployment['name']}[/bold] "
        f"({deployment['id']}) on pool {deployment['work_pool']}"
    )
    if old is not None:
        changes = inputs.deployment_changes(old, deployment)
        for line in changes or ["no changes"]:
            console.out(f"  {line}", highlight=False)
    console.print(f"Run it: pushpool run {deployment['flow_name']}/{deployment['name']} --watch")


def _existing_deployment(client: ApiClient, flow: str, name: str) -> dict[str, Any] | None:
    found = client.get("/deployments", params={"flow_name": flow, "name": name})
    return dict(found[0]) if found else None


def _find_deployment(client: ApiClient, ident: str) -> dict[str, Any]:
    flow, sep, name = ident.partition("/")
    if not sep:
        return dict(client.get(f"/deployments/{ident}"))
    found = client.get("/deployments", params={"flow_name": flow, "name": name})
    if not found:
        raise CliError(f"no deployment {ident!r} (see: pushpool deployment ls)")
    return dict(found[0])


@deployment_app.command("ls")
def deployment_ls(output: OutputOpt = Output.table) -> None:
    """List deployments."""
    deployments = _client().get("/deployments")
    if output == Output.json:
        _print_json(deployments)
        return
    table = Table("flow/deployment", "id", "pool", "schedules", "paused")
    for d in deployments:
        schedules = ", ".join(
            s.get("cron") or f"every {s.get('interval_seconds')}s" for s in d["schedules"]
        )
        table.add_row(
            f"{d['flow_name']}/{d['name']}",
            d["id"],
            d["work_pool"],
            schedules or "-",
            "yes" if d["paused"] else "no",
        )
    console.print(table)


def _schedule_text(schedule: dict[str, Any]) -> str:
    if schedule.get("kind") == "interval":
        text = f"every {schedule['interval_seconds']}s"
    else:
        text = f"{schedule['cron']} ({schedule.get('timezone', 'UTC')})"
    return text if schedule.get("active", True) else f"{text} [inactive]"


@deployment_app.command("inspect")
def deployment_inspect(
    ident: Annotated[str, typer.Argument(help="FLOW/DEPLOYMENT or deployment id")],
    output: OutputOpt = Output.table,
) -> None:
    """Show one deployment."""
    d = _find_deployment(_client(), ident)
    if output == Output.json:
        _print_json(d)
        return
    table = Table("field", "value", show_header=False)
    source = d["source"]
    rows = {
        "deployment": f"{d['flow_name']}/{d['name']}",
        "id": d["id"],
        "entrypoint": d["entrypoint"],
        "source": " ".join(str(v) for v in source.values() if v is not None),
        "work pool": d["work_pool"],
        "schedules": ", ".join(_schedule_text(s) for s in d["schedules"]) or "-",
        "catchup": d["catchup"],
        "paused": "yes" if d["paused"] else "no",
        "parameters": json.dumps(d["parameters"]),
        "retries": f"{d['retries']} (delay {d['retry_delay_seconds']}s)",
        "concurrency limit": str(d["concurrency_limit"] or "-"),
        "timeout": f"{d['timeout_seconds']}s" if d.get("timeout_seconds") else "-",
        "tags": ", ".join(d["tags"]) or "-",
        "job variables": json.dumps(d["job_variables"]),
        "updated": d["updated_at"][:19],
    }
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table, highlight=False)


def _set_deployment_paused(ident: str, paused: bool) -> None:
    client = _client()
    d = _find_deployment(client, ident)
    d = client.request("PATCH", f"/deployments/{d['id']}", json={"paused": paused})
    state = "paused: no scheduled runs until resumed" if paused else "resumed"
    console.print(f"Deployment [bold]{d['flow_name']}/{d['name']}[/bold] {state}")


@deployment_app.command("pause")
def deployment_pause(
    ident: Annotated[str, typer.Argument(help="FLOW/DEPLOYMENT or deployment id")],
) -> None:
    """Pause a deployment: its schedules make no runs until it is resumed."""
    _set_deployment_paused(ident, True)


@deployment_app.command("resume")
def deployment_resume(
    ident: Annotated[str, typer.Argument(help="FLOW/DEPLOYMENT or deployment id")],
) -> None:
    """Resume a paused deployment (from now: nothing is made up)."""
    _set_deployment_paused(ident, False)


@deployment_app.command("delete")
def deployment_delete(
    ident: Annotated[str, typer.Argument(help="FLOW/DEPLOYMENT or deployment id")],
) -> None:
    """Delete a deployment and its scheduled runs."""
    client = _client()
    deployment = _find_deployment(client, ident)
    client.request("DELETE", f"/deployments/{deployment['id']}")
    console.print(f"Deleted deployment [bold]{deployment['flow_name']}/{deployment['name']}[/bold]")


# -- runs -------------------------------------------------------------------------------
@app.command("run")
def run(
    deployment: Annotated[str, typer.Argument(help="FLOW/DEPLOYMENT or a deployment id")],
    param: Annotated[
        list[str] | None,
        typer.Option(help="Parameter key=value; the value is JSON if it parses as JSON"),
    ] = None,
    params_file: Annotated[
        Path | None,
        typer.Option(help="Parameters from a JSON or YAML file (--param values win)"),
    ] = None,
    start_in: Annotated[
        str | None, typer.Option(help="Start after this long: 30s, 10m, 2h, 1d")
    ] = None,
    start_at: Annotated[
        str | None, typer.Option(help="Start at this ISO 8601 time (local time without offset)")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Tag for this run (default: the deployment's)")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Name of the run (default: one like crimson-otter)")
    ] = None,
    watch: Annotated[bool, typer.Option(help="Follow the run's state and logs to the end")] = False,
    cancel_on_interrupt: Annotated[
        bool, typer.Option(help="With --watch: Ctrl-C cancels the run instead of leaving it")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Run at most once per key: the same key gives back the same run"),
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Run a deployment (now, or later with --start-in/--start-at)."""
    client = _client()
    dep = _find_deployment(client, deployment)
    parameters = inputs.read_params_file(params_file) if params_file else {}
    parameters.update(_parse_kv(param, "--param", dep.get("parameter_schema")))
    body: dict[str, Any] = {"parameters": parameters}
    when = inputs.start_at(start_in, start_at, datetime.now(UTC))
    if when is not None:
        body["scheduled_start"] = when.isoformat()
    optional = {"idempotency_key": idempotency_key, "tags": tag, "name": name}
    body.update({k: v for k, v in optional.items() if v})
    flow_run = client.post(f"/deployments/{dep['id']}/runs", json=body)
    if output == Output.json and not watch:
        _print_json(flow_run)
        return
    console.print(
        f"Created flow run [bold]{flow_run['name']}[/bold] ({flow_run['id']}): {_state(flow_run)}"
    )
    if when is not None:
        console.print(f"starts at {flow_run['expected_start']}")
    if watch:
        final = _watch(client, flow_run, cancel_on_interrupt)
        if final["state"]["type"] != "COMPLETED":
            raise typer.Exit(1)


deployment_app.command("run", help="Run a deployment (the same as `pushpool run`).")(run)


def _watch(client: ApiClient, flow_run: dict[str, Any], cancel: bool) -> dict[str, Any]:
    """:func:`_follow`; Ctrl-C stops watching (the run goes on) or, with ``cancel``, cancels."""
    try:
        return _follow(client, flow_run["id"])
    except KeyboardInterrupt:
        if cancel:
            cancelled = client.post(f"/flow-runs/{flow_run['id']}/cancel")
            err_console.print(
                f"Interrupted: cancelling flow run {flow_run['name']}: {_state(cancelled)}"
            )
        else:
            err_console.print(
                f"Stopped watching. Flow run {flow_run['name']} ({flow_run['id']}) goes on; "
                f"cancel it with: pushpool runs cancel {flow_run['id']}"
            )
        raise typer.Exit(130) from None


def _print_log(line: dict[str, Any]) -> None:
    text = f"{line['timestamp'][11:19]} {line['level']:<7} {line['message']}"
    console.out(strip_escapes(text), highlight=False)


def _follow(
    client: ApiClient,
    run_id: str,
    poll: float = 0.5,
    after: int | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """Print logs (those after log id ``after``; all when None; only ``task``'s when
    given) and state changes until the run is final; return the final run."""
    after, last_state = after or 0, None
    with console.status("waiting for the run…") as status:
        while True:
            flow_run = client.get(f"/flow-runs/{run_id}")
            page = client.get(f"/flow-runs/{run_id}/logs", params=_log_params(after, task))
            for line in page["logs"]:
                _print_log(line)
            after = page["next_after"]
            state = (flow_run["state"]["type"], flow_run["state"]["name"])
            if state != last_state:
                console.print(f"state: {_state(flow_run)}")
                status.update(f"run is {state[0].lower()}…")
                last_state = state
            if flow_run["state"]["type"] in TERMINAL and not page["logs"]:
                message = flow_run["state"].get("message")
                if message:
                    console.out(strip_escapes(message), highlight=False)
                return dict(flow_run)
            time.sleep(poll)


#: What `runs ls` shows by default: runs that started or finished (not the upcoming).
_NOT_UPCOMING = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLING", "CANCELLED", "CRASHED"]


def _deployment_id(client: ApiClient, ident: str) -> str:
    """A deployment's id from FLOW/DEPLOYMENT or an id (a deleted deployment's id works)."""
    if "/" in ident:
        return str(_find_deployment(client, ident)["id"])
    return ident


@runs_app.command("ls")
def runs_ls(
    deployment: Annotated[
        str | None, typer.Option(help="FLOW/DEPLOYMENT, or a deployment id (even if deleted)")
    ] = None,
    flow: Annotated[str | None, typer.Option(help="Only runs of this flow")] = None,
    state: Annotated[
        list[str] | None, typer.Option(help="Only runs in this state (repeatable)")
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Only runs with this tag")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Started at or after (with --scheduled/--all: expected start): 1h, 2d or an "
            "ISO time"
        ),
    ] = None,
    scheduled: Annotated[
        bool, typer.Option("--scheduled", help="Upcoming (SCHEDULED) runs, soonest first")
    ] = False,
    all_: Annotated[
        bool, typer.Option("--all", help="Runs in every state, upcoming ones included")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Rows per page")] = 20,
    cursor: Annotated[
        str | None, typer.Option(help="Continue where a previous listing stopped")
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """List flow runs: by default those that started or finished, most recent first."""
    client = _client()
    params: dict[str, Any] = {"limit": limit, "count": output == Output.table}
    if deployment:
        params["deployment_id"] = _deployment_id(client, deployment)
    if scheduled:
        params |= {"state": ["SCHEDULED"], "order": "asc"}
    elif state:
        params["state"] = [s.upper() for s in state]
    elif not all_:
        params["state"] = _NOT_UPCOMING
    if not (scheduled or all_ or "SCHEDULED" in params.get("state", [])):
        params["by"] = "began"  # most recent first by when they started, not were due
    optional = {"flow_name": flow, "tag": tag, "cursor": cursor}
    params |= {k: v for k, v in optional.items() if v}
    if since:
        params["since"] = inputs.since_instant(since, datetime.now(UTC)).isoformat()
    page = client.get("/flow-runs", params=params)
    if output == Output.json:
        _print_json(page)
        return
    _runs_table(page["items"], scheduled)
    _more(page, params)


def _runs_table(runs: list[dict[str, Any]], upcoming: bool) -> None:
    when = "expected start" if upcoming else "started"
    table = Table("name", "id", "flow/deployment", "state", when, "attempts")
    for r in runs:
        start = r["expected_start"] if upcoming else (r["start_time"] or r["expected_start"])
        table.add_row(
            r["name"],
            r["id"][:8],
            f"{r['flow_name']}/{r['deployment_name']}",
            _state(r),
            start[:19].replace("T", " "),
            str(r["run_count"]),
        )
    console.print(table)


def _more(page: dict[str, Any], params: dict[str, Any]) -> None:
    shown, total = len(page["items"]), page.get("total")
    if not page["next_cursor"]:
        if shown == 0:
            console.print("no runs (--all includes upcoming ones, --scheduled shows them)")
        return
    more = "" if total is None else f" of {total}{'+' if total >= 10_000 else ''}"
    console.print(
        f"{shown} run(s) shown{more}; next page: pushpool runs ls ... --cursor "
        f"{page['next_cursor']}",
        highlight=False,
    )


@runs_app.command("inspect")
def runs_inspect(
    run_ref: Annotated[str, typer.Argument(help="Run id, unique id prefix, or name")],
    output: OutputOpt = Output.table,
) -> None:
    """Show a flow run: its state, error and traceback, why it waits, its history."""
    client = _client()
    r = client.get(f"/flow-runs/{run_ref}")
    graph = client.get(f"/flow-runs/{r['id']}/graph")  # the run's task runs
    if output == Output.json:
        _print_json({**r, "task_graph": {"nodes": graph["nodes"], "edges": graph["edges"]}})
        return
    console.print(
        f"[bold]{r['name']}[/bold] ({r['id']}) {r['flow_name']}/{r['deployment_name']}: {_state(r)}"
    )
    if r["state"].get("message"):
        console.out(r["state"]["message"], highlight=False)
    for reason in r.get("waiting_reasons") or []:
        console.out(f"waiting: {reason}", highlight=False)
    console.print(f"parameters: {json.dumps(r['parameters'])}", highlight=False)
    console.print(
        f"expected start: {r['expected_start']}  start: {r['start_time']}  end: {r['end_time']}"
    )
    console.print(f"attempts: {r['run_count']}  infrastructure: {json.dumps(r['infra'])}")
    if r.get("tags"):
        console.out(f"tags: {', '.join(r['tags'])}", highlight=False)
    if r.get("error"):
        error = r["error"]
        console.out(f"error: {error.get('type')}: {error.get('message')}", highlight=False)
        if error.get("traceback"):
            console.out(error["traceback"].rstrip(), highlight=False)
    table = Table("time", "state", "message")
    for h in r["state_history"]:
        table.add_row(h["timestamp"][:19], f"{h['type']} ({h['name']})", h.get("message") or "")
    console.print(table)
    if graph["nodes"]:  # sdk: task runs as a tree
        from service.cli.task_tree import task_tree

        console.print(task_tree(graph))


@limit_app.command("create")
def limit_create(
    tag: Annotated[str, typer.Argument(help="The task tag the limit applies to")],
    limit: Annotated[int, typer.Argument(help="How many tagged task runs may run at once")],
    output: OutputOpt = Output.table,
) -> None:
    """Allow at most LIMIT task runs tagged TAG at once, across all runs (or change it)."""
    created = _client().request("PUT", "/concurrency-limits", json={"tag": tag, "limit": limit})
    if output == Output.json:
        _print_json(created)
        return
    console.print(f"Tag [bold]{tag}[/bold]: at most {created['limit']} task runs at once")


@limit_app.command("ls")
def limit_ls(output: OutputOpt = Output.table) -> None:  # sdk
    """List tag concurrency limits with the slots in use."""
    limits = _client().get("/concurrency-limits")
    if output == Output.json:
        _print_json(limits)
        return
    table = Table("tag", "limit", "in use")
    for lim in limits:
        table.add_row(lim["tag"], str(lim["limit"]), str(lim["active_slots"]))
    console.print(table)


@limit_app.command("delete")
def limit_delete(
    tag: Annotated[str, typer.Argument(help="The task tag whose limit goes")],
) -> None:
    """Remove a tag's concurrency limit."""
    _client().request("DELETE", f"/concurrency-limits/{tag}")
    console.print(f"Removed the concurrency limit of tag [bold]{tag}[/bold]")


@runs_app.command("result")
def runs_result(
    run_ref: Annotated[str, typer.Argument(help="Run id, unique id prefix, or name")],
) -> None:
    """Print a completed flow run's result as JSON."""
    r = _client().get(f"/flow-runs/{run_ref}")
    if r["state"]["type"] != "COMPLETED":
        raise CliError(f"flow run {r['name']} is {r['state']['type']}: it has no result")
    _print_json(r["result"])


def _log_params(after: int, task: str | None) -> dict[str, Any]:
    return {"after": after} if task is None else {"after": after, "task_run": task}


def _read_logs(client: ApiClient, run_ref: str, task: str | None = None) -> list[dict[str, Any]]:
    after, lines = 0, []
    while True:
        page = client.get(f"/flow-runs/{run_ref}/logs", params=_log_params(after, task))
        lines += page["logs"]
        if not page["logs"]:
            return lines
        after = page["next_after"]


@runs_app.command("logs")
def runs_logs(
    run_ref: Annotated[str, typer.Argument(help="Run id, unique id prefix, or name")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends")
    ] = False,
    tail: Annotated[
        int | None, typer.Option("--tail", "-n", min=1, help="Only the last N lines")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only lines logged since: 10m, 1h or an ISO time")
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="Only the lines of this task run (its name, id or unique id prefix)"),
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Print a flow run's logs (or one task run's)."""
    client = _client()
    run_id = client.get(f"/flow-runs/{run_ref}")["id"]
    if tail is not None and not since:  # the server reads the log backwards
        params: dict[str, Any] = {"tail": tail} | ({"task_run": task} if task else {})
        lines = client.get(f"/flow-runs/{run_id}/logs", params=params)["logs"]
    else:
        lines = _read_logs(client, run_id, task)
    if since:
        floor = inputs.since_instant(since, datetime.now(UTC))
        lines = [x for x in lines if datetime.fromisoformat(x["timestamp"]) >= floor]
    if tail is not None:
        lines = list(deque(lines, maxlen=tail))
    if output == Output.json and not follow:
        _print_json(lines)
        return
    for line in lines:
        _print_log(line)
    if follow:
        _follow(client, run_id, after=lines[-1]["id"] if lines else None, task=task)


@runs_app.command("cancel")
def runs_cancel(
    run_ref: Annotated[str, typer.Argument(help="Run id, unique id prefix, or name")],
) -> None:
    """Cancel a flow run."""
    r = _client().post(f"/flow-runs/{run_ref}/cancel")
    console.print(f"Flow run {r['name']} ({r['id']}): {_state(r)}")


# -- scheduler, keys ------------------------------------------------------------------------
@scheduler_app.command("tick")
def scheduler_tick(output: OutputOpt = Output.table) -> None:
    """Run one scheduler tick on the server now."""
    report = _client().post("/scheduler/tick")
    if output == Output.json:
        _print_json(report)
        return
    rec = report["reconcile"]
    console.print(
        f"materialised {report['materialised']} run(s) from {report['schedules']} schedule(s), "
        f"skipped {report['skipped']}, dispatched {report['dispatched']}; reconciled "
        f"{rec['checked']}: {rec['crashed']} crashed, {rec['cancelled']} cancelled, "
        f"{rec['torn_down']} torn down"
    )


@key_app.command("create")
def key_create(
    name: Annotated[str, typer.Argument(help="A name to tell the key by")],
    role: Annotated[
        str, typer.Option(help="viewer (read), deployer (deployments, runs) or admin")
    ] = "viewer",
    pool: Annotated[
        list[str] | None, typer.Option(help="A deployer's work pool (repeatable; default: all)")
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create an API key, no stronger than the key creating it; it is shown once."""
    body: dict[str, Any] = {"name": name, "role": role}
    if pool:
        body["pools"] = pool
    created = _client().post("/api-keys", json=body)
    if output == Output.json:
        _print_json(created)
    else:
        console.print(
            f"API key {created['id']} ({created['name']}, {created['role']}), shown once:"
        )
        console.out(created["key"])


@key_app.command("ls")
def key_ls(output: OutputOpt = Output.table) -> None:
    """List API keys and their roles (never their secrets)."""
    keys = _client().get("/api-keys")
    if output == Output.json:
        _print_json(keys)
        return
    table = Table("id", "name", "role", "pools", "created", "revoked")
    for k in keys:
        pools = "-" if k["pools"] is None else ", ".join(k["pools"])
        revoked = (k["revoked_at"] or "-")[:19]
        table.add_row(k["id"], k["name"], k["role"], pools, k["created_at"][:19], revoked)
    console.print(table)


@key_app.command("revoke")
def key_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (api-key ls)")]) -> None:
    """Revoke an API key."""
    _client().request("DELETE", f"/api-keys/{key_id}")
    console.print(f"Revoked API key {key_id}")


@admin_app.command("recover-key")
def admin_recover_key(
    name: Annotated[str, typer.Option(help="Name of the new key")] = "recovered-admin",
) -> None:
    """Mint a new admin key straight in this machine's store (when every admin key is
    lost) and save it to the credentials file. Needs the server's settings and files."""
    from service.bootstrap import recover_admin_key
    from service.services import build_services
    from service.settings import get_settings

    svc = build_services(get_settings())
    try:
        key_id, path = recover_admin_key(svc, name)
    finally:
        svc.store.close()
    err_console.print(f"Created admin API key {key_id}: saved to {path} (mode 0600)")


# -- service (the control plane's stack) --------------------------------------------------
@service_app.command("deploy")
def service_deploy(
    stack_name: Annotated[str, typer.Option(help="CloudFormation stack name")],
    region: Annotated[str | None, typer.Option(help="AWS region (default: the profile's)")] = None,
    bucket: Annotated[
        str | None,
        typer.Option(help="Artifacts bucket (default: pushpool-artifacts-ACCOUNT-REGION)"),
    ] = None,
    wheels_dir: Annotated[
        Path | None, typer.Option(help="Install dependency wheels from here only (no index)")
    ] = None,
    allowed_role_arns: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated IAM role ARNs ECS pools may give their runs (the stack's "
            'AllowedRoleArns; "" for none; default: keep the deployed value)'
        ),
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Build the Lambda package, upload it, create or update the stack, print the API URL."""
    import tempfile

    from service.cli import deploy_stack

    roles = deploy_stack.allowed_role_arns(allowed_role_arns)

    with tempfile.TemporaryDirectory(prefix="pushpool-package-") as tmp:
        with err_console.status("building the Lambda package…"):
            package = deploy_stack.build_package(Path(tmp), wheels_dir=wheels_dir)
        with deploy_stack.rich_progress(err_console, f"deploying {stack_name}") as progress:
            result = deploy_stack.deploy(
                stack_name,
                region,
                deploy_stack.default_template(),
                package,
                progress,
                bucket=bucket,
                roles=roles,
            )
    outputs = result.outputs
    if output == Output.json:
        _print_json({"stack_name": stack_name, "changed": result.changed, "outputs": outputs})
        return
    console.print(f"Stack {stack_name}: {'deployed' if result.changed else 'no changes'}")
    console.print(f"API URL: {outputs.get('ApiUrl', '-')}", highlight=False)
    console.print(f"Table:   {outputs.get('TableName', '-')}", highlight=False)


@service_app.command("destroy")
def service_destroy(
    stack_name: Annotated[str, typer.Option(help="CloudFormation stack name")],
    region: Annotated[str | None, typer.Option(help="AWS region (default: the profile's)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete the stack (what the template retains, such as the table, is kept)."""
    from service.cli import deploy_stack

    if not deploy_stack.stack_exists(stack_name, region):
        raise CliError(f"stack {stack_name} does not exist")
    if not yes and not typer.confirm(f"Delete stack {stack_name}?", default=False):
        raise CliError("aborted; nothing was deleted")
    with deploy_stack.rich_progress(err_console, f"deleting {stack_name}") as progress:
        deploy_stack.destroy(stack_name, region, progress)
    console.print(f"Deleted stack {stack_name}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
