"""``pushpool work-pool update``: change a pool's config, concurrency limit or pause over
the API's ``PATCH /api/work-pools/{name}`` (the server validates the config against the
pool type's model, as at create: a 422 names the field)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.client import CliError
from service.cli.inputs import read_object_file


def config_changes(
    current: dict[str, Any],
    file: Path | None,
    sets: list[str] | None,
    unsets: list[str] | None,
) -> dict[str, Any] | None:
    """The pool's whole new config: ``current`` with the file's keys, then ``--set``'s, laid
    over it and ``--unset``'s keys removed; ``None`` when none of them is given."""
    from service.cli.main import _parse_kv

    if file is None and not sets and not unsets:
        return None
    config = dict(current)
    if file is not None:
        config.update(read_object_file(file, "-f", "config keys to values"))
    config.update(_parse_kv(sets, "--set"))
    for key in unsets or []:
        if key not in config:
            raise CliError(f"--unset {key}: the pool's config has no such key")
        del config[key]
    return config


def pool_update(
    name: Annotated[str, typer.Argument(help="Work pool name")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Config key=value (JSON if it parses, else a string)"),
    ] = None,
    unset: Annotated[list[str] | None, typer.Option("--unset", help="Remove a config key")] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="A JSON or YAML object of config keys to set"),
    ] = None,
    concurrency_limit: Annotated[
        int | None,
        typer.Option(min=0, help="At most this many runs in the pool at once (0: none start)"),
    ] = None,
    no_concurrency_limit: Annotated[
        bool, typer.Option("--no-concurrency-limit", help="Remove the concurrency limit")
    ] = False,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    """Update a work pool's config (merged into the current one) or concurrency limit."""
    from service.cli.main import Output, _client, _pool_table, _print_json, console

    if output not in {o.value for o in Output}:
        raise CliError(f"--output must be table or json, not {output!r}")
    if concurrency_limit is not None and no_concurrency_limit:
        raise CliError("give --concurrency-limit or --no-concurrency-limit, not both")
    client = _client()
    pool = client.get(f"/work-pools/{name}")
    body: dict[str, Any] = {}
    config = config_changes(pool["config"], file, set_, unset)
    if config is not None:
        body["config"] = config
    if concurrency_limit is not None or no_concurrency_limit:
        body["concurrency_limit"] = concurrency_limit
    if not body:
        raise CliError(
            "nothing to change: give --set, --unset, -f, --concurrency-limit or "
            "--no-concurrency-limit"
        )
    updated = client.request("PATCH", f"/work-pools/{name}", json=body)
    if output == Output.json:
        _print_json(updated)
        return
    console.print(f"Updated work pool [bold]{updated['name']}[/bold]")
    console.print(_pool_table([updated]))
