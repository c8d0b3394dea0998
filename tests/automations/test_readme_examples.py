"""Every complete automation in the README's Automations section is a valid one."""

from __future__ import annotations

import yaml
from support.readme import yaml_blocks

from service.automation_records import AutomationCreate


def test_every_automation_in_the_readme_is_valid() -> None:
    complete = [b for b in yaml_blocks("Automations") if b.startswith("name: ")]
    names = [AutomationCreate.model_validate(yaml.safe_load(b)).name for b in complete]
    assert names == ["notify-on-failure", "build-on-push", "nightly-etl-missing", "stop-flapping"]
    types = {
        a["type"] for b in complete for a in yaml.safe_load(b)["actions"]
    }  # the examples show e-mail, webhooks' run-deployment and the schedules action
    assert {"notify", "email", "run-deployment", "pause-schedules"} <= types
