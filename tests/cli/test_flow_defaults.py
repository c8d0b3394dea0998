"""`pushpool deploy` reads @flow(...) settings without running the file."""

from __future__ import annotations

from pathlib import Path

from service.cli.introspect import flow_defaults


def test_flow_decorator_settings_become_deployment_defaults(tmp_path: Path) -> None:
    src = tmp_path / "flow.py"
    src.write_text(
        "import pushpool\n"
        "from pushpool import flow\n"
        "raise SystemExit('never executed')\n"
        "@flow(name='nightly', retries=2, retry_delay_seconds=30, log_prints=True)\n"
        "def a(): ...\n"
        "@pushpool.flow(retries=1, retry_delay_seconds=[1, 2], name=NAME)\n"
        "def b(): ...\n"
        "@flow\n"
        "def c(): ...\n"
        "def d(): ...\n"
        "@flow(retries=True, name='')\n"
        "def e(): ...\n"
    )
    assert flow_defaults(src, "a") == {
        "flow_name": "nightly",
        "retries": 2,
        "retry_delay_seconds": 30,
    }
    assert flow_defaults(src, "b") == {"retries": 1}  # a list of delays, a variable: skipped
    assert flow_defaults(src, "c") == {}
    assert flow_defaults(src, "d") == {}
    assert flow_defaults(src, "e") == {}
    assert flow_defaults(src, "missing") == {}
    assert flow_defaults(tmp_path / "nope.py", "a") == {}


def test_task_tree_shows_upstream_to_downstream() -> None:
    from rich.console import Console

    from service.cli.task_tree import task_tree

    def node(ident: str, state: str = "COMPLETED", attempts: int = 1) -> dict[str, object]:
        return {
            "id": ident,
            "name": ident,
            "state": state,
            "duration_seconds": 0.5,
            "attempts": attempts,
        }

    graph = {
        "nodes": [node("extract", attempts=2), node("t0"), node("t1", "CACHED"), node("load")],
        "edges": [
            {"source": "extract", "target": "t0"},
            {"source": "extract", "target": "t1"},
            {"source": "t0", "target": "load"},
            {"source": "t1", "target": "load"},
        ],
    }
    console = Console(width=80, record=True, color_system=None)
    console.print(task_tree(graph))
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    assert lines == [
        "task runs (4)",
        "└── extract COMPLETED 0.50s x2",
        "    ├── t0 COMPLETED 0.50s",
        "    │   └── load COMPLETED 0.50s",
        "    └── t1 CACHED 0.50s",
        "        └── load COMPLETED 0.50s",
    ]
