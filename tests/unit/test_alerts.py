"""The automations a deploy keeps for an import deployment: what each matches, and when one is unchanged."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from prefect.events.schemas.automations import AutomationCore, Posture

from deployments.alerts import AlertTarget, alert_block, automations_for, same_automation

TARGET = AlertTarget(UUID(int=7), "import-csv-from-ftp/products", "products")
BLOCK = UUID(int=9)


def test_three_automations_per_job_keyed_on_its_events() -> None:
    failed, rejects, quiet = automations_for(TARGET, BLOCK, quiet_after=timedelta(hours=26))
    assert [a.name for a in (failed, rejects, quiet)] == [
        "datahub: products failed",
        "datahub: products rejects",
        "datahub: products quiet",
    ]
    assert failed.trigger.match.model_dump() == {  # type: ignore[union-attr]
        "prefect.resource.id": "datahub.job.products",
        "datahub.repeat": "false",
    }
    assert quiet.trigger.posture == Posture.Proactive  # type: ignore[union-attr]
    assert quiet.trigger.expect == {"datahub.run.success", "datahub.run.partial"}  # type: ignore[union-attr]
    assert {a.owner_resource for a in (failed, rejects, quiet)} == {f"prefect.deployment.{UUID(int=7)}"}


def test_an_automation_as_stored_is_the_same_whatever_order_its_sets_come_back_in() -> None:
    quiet = automations_for(TARGET, BLOCK, quiet_after=timedelta(seconds=15))[2]
    document = quiet.model_dump(mode="json")
    document["trigger"]["expect"] = sorted(document["trigger"]["expect"], reverse=True)
    assert same_automation(AutomationCore.model_validate(document), quiet)
    document["trigger"]["within"] = 16.0
    assert not same_automation(AutomationCore.model_validate(document), quiet)


def test_the_alert_block_is_type_slash_name() -> None:
    assert alert_block("slack-webhook/ops") == ("slack-webhook", "ops")
    with pytest.raises(ValueError, match="is not TYPE/NAME"):
        alert_block("ops")
