"""``pushpool block``: block documents and types over the API (secrets never printed:
the server masks them), and ``pushpool admin rotate-blocks-key`` on the server's machine."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from service.cli.client import ApiClient, CliError, client_from_env
from service.cli.inputs import read_object_file

app = typer.Typer(help="Blocks: typed configuration and write-only secrets.", no_args_is_help=True)
type_app = typer.Typer(help="Block types.", no_args_is_help=True)
app.add_typer(type_app, name="type")
console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

OutputOpt = Annotated[str, typer.Option("--output", "-o", help="table or json")]
RefArg = Annotated[str, typer.Argument(help="The block: TYPE/NAME, e.g. secret/db-password")]


def _json_output(output: str) -> bool:
    if output not in ("table", "json"):
        raise CliError(f"--output must be table or json, not {output!r}")
    return output == "json"


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _split(ref: str) -> tuple[str, str]:
    slug, sep, name = ref.partition("/")
    if not sep or not slug or not name or "/" in name:
        raise CliError(f"block {ref!r} must be TYPE/NAME, e.g. secret/db-password")
    return slug, name


def read_values_file(path: Path) -> dict[str, Any]:
    """A JSON or YAML object of values (never echoed on an error: it may hold secrets)."""
    return read_object_file(path, "-f", "field names to values")


def _values(
    client: ApiClient, slug: str, sets: list[str] | None, file: Path | None
) -> dict[str, Any]:
    from service.cli.main import _parse_kv

    values = read_values_file(file) if file is not None else {}
    if sets:
        schema = client.get(f"/block-types/{slug}")["json_schema"]
        values.update(_parse_kv(sets, "--set", schema))
    return values


def _show(block: dict[str, Any]) -> None:
    console.print(f"[bold]{block['ref']}[/bold] (version {block['version']})")
    for key, value in sorted(block["values"].items()):
        secret = " (secret)" if key in block["secret_fields"] else ""
        console.out(f"  {key}: {json.dumps(value)}{secret}")


@app.command("create")
def create(
    ref: RefArg,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A field: key=value (JSON if it parses, else a string)"),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="A JSON or YAML file of values (keeps secrets out of your shell history)",
        ),
    ] = None,
    output: OutputOpt = "table",
) -> None:
    """Create or replace a block; a secret field left out keeps its current value."""
    as_json = _json_output(output)
    slug, name = _split(ref)
    client = client_from_env()
    body = {"values": _values(client, slug, set_, file)}
    block = client.request("PUT", f"/blocks/{slug}/{name}", json=body)
    if as_json:
        _print_json(block)
        return
    console.print(f"Saved block [bold]{block['ref']}[/bold] (version {block['version']})")


@app.command("ls")
def ls(
    type_: Annotated[str | None, typer.Option("--type", help="Only blocks of this type")] = None,
    output: OutputOpt = "table",
) -> None:
    """List blocks (secret fields masked)."""
    as_json = _json_output(output)
    params = {"type": type_} if type_ else {}
    blocks = client_from_env().get("/blocks", params=params)
    if as_json:
        _print_json(blocks)
        return
    table = Table("block", "fields", "secret fields", "version", "updated")
    for b in blocks:
        plain = sorted(k for k in b["values"] if k not in b["secret_fields"])
        secret = sorted(k for k in b["values"] if k in b["secret_fields"])
        table.add_row(
            b["ref"], ", ".join(plain), ", ".join(secret), str(b["version"]), b["updated_at"]
        )
    console.print(table)


@app.command("inspect")
def inspect(ref: RefArg, output: OutputOpt = "table") -> None:
    """Show a block (secret fields read ********: they cannot be read back)."""
    as_json = _json_output(output)
    slug, name = _split(ref)
    block = client_from_env().get(f"/blocks/{slug}/{name}")
    if as_json:
        _print_json(block)
        return
    _show(block)


@app.command("delete")
def delete(ref: RefArg) -> None:
    """Delete a block no deployment uses."""
    slug, name = _split(ref)
    client_from_env().request("DELETE", f"/blocks/{slug}/{name}")
    console.print(f"Deleted block [bold]{slug}/{name}[/bold]")


@type_app.command("ls")
def type_ls(output: OutputOpt = "table") -> None:
    """List block types (built-in and registered)."""
    as_json = _json_output(output)
    types = client_from_env().get("/block-types")
    if as_json:
        _print_json(types)
        return
    table = Table("type", "fields", "secret fields", "built in", "description")
    for t in types:
        fields = sorted((t["json_schema"].get("properties") or {}).keys())
        table.add_row(
            t["slug"],
            ", ".join(f for f in fields if f not in t["secret_fields"]),
            ", ".join(t["secret_fields"]),
            "yes" if t["builtin"] else "",
            t["description"],
        )
    console.print(table)


@type_app.command("inspect")
def type_inspect(
    slug: Annotated[str, typer.Argument(help="The block type's slug")],
    output: OutputOpt = "table",
) -> None:
    """Show a block type and its JSON Schema."""
    as_json = _json_output(output)
    block_type = client_from_env().get(f"/block-types/{slug}")
    if as_json:
        _print_json(block_type)
        return
    console.print(f"[bold]{block_type['slug']}[/bold]: {block_type['description']}")
    console.out(f"secret fields: {', '.join(block_type['secret_fields']) or '(none)'}")
    console.out(json.dumps(block_type["json_schema"], indent=2))


def load_block_class(path: Path, name: str) -> Any:
    """Import ``path`` (your own code, on your machine) and return its ``Block``
    subclass ``name``."""
    import importlib.util

    from pushpool.blocks import Block

    if not path.is_file():
        raise CliError(f"{path} does not exist")
    spec = importlib.util.spec_from_file_location(f"_pushpool_block_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise CliError(f"{path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise CliError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Block)):
        raise CliError(f"{path}:{name} is not a pushpool.blocks.Block subclass")
    return cls


def _schema_from(source: str) -> tuple[dict[str, Any], str | None, str]:
    """(schema, slug, description) from a JSON/YAML schema file or ``file.py:Class``."""
    file_part, sep, cls_name = source.rpartition(":")
    if sep and file_part.endswith(".py"):
        cls = load_block_class(Path(file_part), cls_name)
        return cls.type_schema(), cls.type_slug(), (cls.__doc__ or "").strip()
    return read_values_file(Path(source)), None, ""


@type_app.command("register")
def type_register(
    source: Annotated[
        str, typer.Argument(help="A JSON/YAML schema file, or file.py:Class (a Block subclass)")
    ],
    slug: Annotated[
        str | None, typer.Option(help="The type's slug (default: the class's block_type)")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the type is for")] = None,
    output: OutputOpt = "table",
) -> None:
    """Register (or replace) a block type; writeOnly (SecretStr) fields are secret."""
    as_json = _json_output(output)
    schema, class_slug, doc = _schema_from(source)
    chosen = slug or class_slug
    if not chosen:
        raise CliError("give --slug for a schema file")
    body = {"slug": chosen, "json_schema": schema, "description": description or doc[:2000]}
    block_type = client_from_env().post("/block-types", json=body)
    if as_json:
        _print_json(block_type)
        return
    secret = ", ".join(block_type["secret_fields"]) or "none"
    console.print(f"Registered block type [bold]{chosen}[/bold] (secret fields: {secret})")


@type_app.command("delete")
def type_delete(slug: Annotated[str, typer.Argument(help="The block type's slug")]) -> None:
    """Delete a registered block type that has no blocks."""
    client_from_env().request("DELETE", f"/block-types/{slug}")
    console.print(f"Deleted block type [bold]{slug}[/bold]")


def rotate_key(
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="Keep the old key(s) after re-encrypting")
    ] = False,
    reencrypt_only: Annotated[
        bool,
        typer.Option(
            "--reencrypt-only",
            help="Add no key: re-encrypt under the first configured key (PUSHPOOL_BLOCKS_KEYS)",
        ),
    ] = False,
) -> None:
    """Rotate the blocks encryption key on this machine's store: add a new key, re-encrypt
    every block secret under it, then drop the old key(s). Needs the server's settings."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from service.blocks.rotation import rotate
    from service.services import build_services
    from service.settings import get_settings

    svc = build_services(get_settings())
    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), console=err_console
        ) as bar:
            task = bar.add_task("re-encrypting block secrets", total=None)
            count = rotate(
                svc,
                add_key=not reencrypt_only,
                drop_old=not keep_old and not reencrypt_only,
                progress=lambda ref: bar.update(task, description=f"re-encrypted {ref}"),
            )
    finally:
        svc.store.close()
    console.print(f"Re-encrypted the secrets of {count} block(s) under the new key")
