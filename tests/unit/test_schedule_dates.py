"""The run times `schedule` shows are the ones Prefect's scheduler makes: our copy against the server's code.

`deployments.schedule_dates` re-implements `prefect.server.schemas.schedules.*.get_dates` so the CLI
need not import Prefect's server; this test runs both over every preset form, in zones with and
without daylight saving (north and south, a half-hour offset), from starts around each change.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prefect.server.schemas import schedules as server

from deployments.schedule_dates import schedule_dates
from deployments.schedules import native_schedule, parse_preset

PRESETS = (
    "every 15 minutes",
    "every 7 minutes",
    "every 90 minutes",
    "every 2 hours",
    "every 5 hours",
    "every 2 hours 30 minutes",
    "hourly at :05",
    "daily at 02:00",
    "daily at 02:30",
    "daily at 01:30",
    "every 3 days at 06:00",
    "weekdays at 08:30",
    "weekly on sat,sun at 02:30",
    "monthly on day 28 at 02:00",
    "monthly on last day at 23:00",
    "monthly on last weekday at 18:00",
    "cron 30 1-3 * * *",
)
# Europe (last Sunday of March/October), the US (second Sunday of March, first of November), the
# southern hemisphere (April/October), a half-hour zone without DST, and UTC.
ZONES = {
    "UTC": ("2027-03-28", "2027-10-31"),
    "Europe/Paris": ("2027-03-28", "2027-10-31"),
    "America/New_York": ("2027-03-14", "2027-11-07"),
    "Australia/Sydney": ("2027-04-04", "2027-10-03"),
    "Asia/Kolkata": ("2027-02-28", "2027-12-31"),
}
HOURS_AROUND_THE_CHANGE = (-30, -3, -1, 0, 1, 2, 3, 25)


def _starts(zone: str) -> list[datetime]:
    tz = ZoneInfo(zone)
    starts = []
    for day in ZONES[zone]:
        midnight = datetime.fromisoformat(day).replace(tzinfo=tz)
        starts += [
            midnight + timedelta(hours=h, minutes=7 * i) for i, h in enumerate(HOURS_AROUND_THE_CHANGE)
        ]
    return starts


def _server_schedule(schedule: dict[str, Any]) -> Any:
    native = native_schedule(schedule)
    return getattr(server, type(native).__name__).model_validate(native.model_dump())


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("preset", PRESETS)
def test_the_dates_are_the_schedulers(preset: str, zone: str) -> None:
    schedule = parse_preset(f"{preset} in {zone}")
    native, twin = native_schedule(schedule), _server_schedule(schedule)
    for start in _starts(zone):
        ours = schedule_dates(native, n=12, start=start)
        theirs = asyncio.run(twin.get_dates(n=12, start=start))
        assert [d.isoformat() for d in ours] == [d.isoformat() for d in theirs], (preset, zone, start)
        assert len(ours) == 12


def test_a_start_that_matches_is_included_as_the_scheduler_does() -> None:
    schedule = parse_preset("daily at 02:00")
    start = datetime(2027, 1, 5, 2, 0, tzinfo=ZoneInfo("UTC"))
    assert schedule_dates(native_schedule(schedule), n=1, start=start) == [start]
    assert asyncio.run(_server_schedule(schedule).get_dates(n=1, start=start)) == [start]


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        schedule_dates(native_schedule(parse_preset("daily at 02:00")), n=1, start=datetime(2027, 1, 5))
