"""Notifications as code: the automations `python -m deployments deploy` keeps for each import deployment.

Three automations per import job, each sending through one notification block (a Custom Webhook here;
Slack or e-mail are the same action with another block, docs/notifications.md):

- **failed**: the run's event `datahub.run.failed` (emitted by `tasks.run.history`), unless the run
  failed exactly as the job's previous run did (label `datahub.repeat`): a file that fails the same
  way every 15 minutes alerts once, and again only after a run that did not;
- **rejects**: `datahub.run.partial`, a run that loaded with rejects;
- **quiet**: no `datahub.run.success` or `datahub.run.partial` of the job within `quiet_after` (a
  proactive trigger: Prefect fires it on the absence of the events).

They are named `datahub: <job> <kind>` and owned by their deployment (deleting the deployment deletes
them); a deploy replaces their definition in place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound

ALERT_BLOCK_ENV = "DATAHUB_ALERT_BLOCK"
DEFAULT_ALERT_BLOCK = "custom-webhook/datahub-alerts"
DEFAULT_QUIET_AFTER = timedelta(hours=26)
"""Longer than a day: a daily job that ran late is not quiet yet."""
MIN_QUIET_AFTER = timedelta(seconds=10)
"""Prefect's smallest `within` for a proactive trigger."""

_RUN_BODY = (
    "{{ event.payload.status }}: {{ event.payload.job }} ({{ event.payload.entity }}): {{ event.payload.counts }}"
    "{% if event.payload.reason %}. {{ event.payload.reason }}{% endif %} (run {{ event.payload.run_id }})"
)


@dataclass(frozen=True)
class AlertTarget:
    """An import deployment on the server, and the job it runs."""

    deployment_id: UUID
    deployment: str
    job: str


def alert_block(value: str | None = None) -> tuple[str, str]:
    """Return (block type slug, block name) of `--alert-block`, `DATAHUB_ALERT_BLOCK` or the default."""
    text = value or os.environ.get(ALERT_BLOCK_ENV) or DEFAULT_ALERT_BLOCK
    slug, slash, name = text.partition("/")
    if not slash or not slug or not name:
        raise ValueError(
            f"the alert block {text!r} is not TYPE/NAME; e.g. {DEFAULT_ALERT_BLOCK} (a Custom Webhook block)"
        )
    return slug, name


def automations_for(target: AlertTarget, block_id: UUID, *, quiet_after: timedelta) -> list[AutomationCore]:
    """Return the three automations of one import deployment, sending through the block `block_id`."""
    if quiet_after < MIN_QUIET_AFTER:
        raise ValueError(f"quiet_after of {quiet_after} is shorter than Prefect's minimum of 10 s")
    job = f"datahub.job.{target.job}"
    owner = f"prefect.deployment.{target.deployment_id}"

    def automation(
        kind: str, description: str, trigger: EventTrigger, subject: str, body: str
    ) -> AutomationCore:
        return AutomationCore(
            name=f"datahub: {target.job} {kind}",
            description=f"{description} (made by `python -m deployments deploy` for {target.deployment}).",
            trigger=trigger,
            actions=[SendNotification(block_document_id=block_id, subject=subject, body=body)],
            owner_resource=owner,
        )

    return [
        automation(
            "failed",
            "A run of the job failed, unless it failed as the job's previous run did",
            _on_each({"datahub.run.failed"}, {"prefect.resource.id": job, "datahub.repeat": "false"}),
            f"Data Hub: {target.job} FAILED",
            _RUN_BODY,
        ),
        automation(
            "rejects",
            "A run of the job loaded with rejects",
            _on_each({"datahub.run.partial"}, {"prefect.resource.id": job}),
            f"Data Hub: {target.job} has rejects",
            _RUN_BODY,
        ),
        automation(
            "quiet",
            f"No successful run of the job within {_span(quiet_after)}",
            EventTrigger(
                expect={"datahub.run.success", "datahub.run.partial"},
                match={"prefect.resource.id": job},
                posture=Posture.Proactive,
                threshold=1,
                within=quiet_after,
            ),
            f"Data Hub: {target.job} is quiet",
            f"QUIET: no successful run of {target.job} ({target.deployment}) within {_span(quiet_after)}.",
        ),
    ]


def _on_each(events: set[str], match: dict[str, str]) -> EventTrigger:
    """Fire on every one of these events about the matching resource."""
    return EventTrigger(
        expect=events, match=match, posture=Posture.Reactive, threshold=1, within=timedelta(0)
    )


def sync_alerts(
    client: SyncPrefectClient,
    targets: Sequence[AlertTarget],
    block: tuple[str, str],
    *,
    quiet_after: timedelta,
) -> list[str]:
    """Create or replace the automations of each target; return the lines to print.

    Without the block, nothing is made and the line says how to make it.
    """
    slug, name = block
    try:
        block_id = client.read_block_document_by_name(name, slug, include_secrets=False).id
    except ObjectNotFound:
        return [
            f"alerts: no notification block {slug}/{name} on the server; no automations made (save one: "
            f"docs/notifications.md, or name another with --alert-block or {ALERT_BLOCK_ENV})"
        ]
    lines = []
    for target in targets:
        for wanted in automations_for(target, block_id, quiet_after=quiet_after):
            lines.append(f"alerts: {wanted.name}: {_put(client, wanted)}")
    return lines


def _put(client: SyncPrefectClient, wanted: AutomationCore) -> str:
    stored = client.read_automations_by_name(wanted.name)
    if not stored:
        client.create_automation(wanted)
        return "created"
    first, *others = stored
    for extra in others:  # made twice by hand or by two deploys at once: one is enough
        client.delete_automation(extra.id)
    if same_automation(first, wanted):
        return "unchanged"
    # The update takes no owner (it stays the one given at creation); an operator's pause stays.
    fields = {name: getattr(wanted, name) for name in _COMPARED - {"enabled"}}
    client.update_automation(first.id, AutomationCore(**fields, enabled=first.enabled))
    return "updated"


_COMPARED = set(AutomationCore.model_fields) - {"owner_resource"}
"""What a deploy sets on an existing automation: all but its owner."""


def same_automation(stored: Any, wanted: AutomationCore) -> bool:
    """Whether the stored automation is what a deploy would make now (its owner and pause aside)."""
    fields = _COMPARED - {"enabled"}  # an operator's pause in the UI stays
    mine = wanted.model_dump(mode="json", include=fields)
    theirs = stored.model_dump(mode="json", include=fields)
    for dumped in (mine, theirs):
        trigger = dumped["trigger"]
        trigger.pop("id", None)
        for key in ("expect", "after"):  # sets: dumped in an order that differs between two equal sets
            trigger[key] = sorted(trigger.get(key) or [])
    return bool(mine == theirs)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"
