"""Schedule presets become exact native Prefect schedules, preview correctly, and `check` guards prefect.yaml."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from deployments.__main__ import main
from deployments.schedules import cron_warnings, next_runs, parse_preset, schedule_problems

UTC = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")
AFTER = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


PRESETS = [
    pytest.param("every 15 minutes", {"cron": "*/15 * * * *", "slug": "every-15-minutes"}, id="minutes-cron"),
    pytest.param("every minute", {"cron": "* * * * *", "slug": "every-minute"}, id="every-minute"),
    pytest.param(
        "every 7 minutes",
        {"interval": 420, "anchor_date": "2026-01-01T00:00:00+00:00", "slug": "every-7-minutes"},
        id="minutes-interval",
    ),
    pytest.param(
        "every 90 minutes",
        {"interval": 5400, "anchor_date": "2026-01-01T00:00:00+00:00", "slug": "every-90-minutes"},
        id="minutes-over-an-hour",
    ),
    pytest.param(
        "every 120 minutes", {"cron": "0 */2 * * *", "slug": "every-2-hours"}, id="minutes-whole-hours"
    ),
    pytest.param("every 2 hours", {"cron": "0 */2 * * *", "slug": "every-2-hours"}, id="hours-cron"),
    pytest.param("every hour", {"cron": "0 * * * *", "slug": "hourly"}, id="every-hour"),
    pytest.param(
        "every 5 hours",
        {"interval": 18000, "anchor_date": "2026-01-01T00:00:00+00:00", "slug": "every-5-hours"},
        id="hours-not-dividing-the-day",
    ),
    pytest.param(
        "every 2 hours 30 minutes",
        {"interval": 9000, "anchor_date": "2026-01-01T00:00:00+00:00", "slug": "every-2h30m"},
        id="hours-and-minutes",
    ),
    pytest.param(
        "Every 2 hours and 30 minutes in Europe/Paris",
        {"interval": 9000, "anchor_date": "2026-01-01T00:00:00+01:00", "slug": "every-2h30m"},
        id="hours-and-minutes-in-zone",
    ),
    pytest.param("hourly at :05", {"cron": "5 * * * *", "slug": "hourly-at-05"}, id="hourly-at"),
    pytest.param("every hour at minute 5", {"cron": "5 * * * *", "slug": "hourly-at-05"}, id="every-hour-at"),
    pytest.param("daily at 02:00", {"cron": "0 2 * * *", "slug": "daily-0200"}, id="daily"),
    pytest.param("every day at 2:30", {"cron": "30 2 * * *", "slug": "daily-0230"}, id="every-day"),
    pytest.param(
        "every 3 days at 06:00",
        {"interval": 259200, "anchor_date": "2026-01-01T06:00:00+00:00", "slug": "every-3-days-0600"},
        id="every-n-days",
    ),
    pytest.param("weekdays at 08:30", {"cron": "30 8 * * 1-5", "slug": "weekdays-0830"}, id="weekdays"),
    pytest.param(
        "weekly on mon,wed,fri at 09:00",
        {"cron": "0 9 * * 1,3,5", "slug": "weekly-mon-wed-fri-0900"},
        id="weekly",
    ),
    pytest.param(
        "weekly on Sunday, monday at 07:15",
        {"cron": "15 7 * * 0,1", "slug": "weekly-mon-sun-0715"},
        id="weekly-full-names",
    ),
    pytest.param(
        "monthly on day 15 at 02:00", {"cron": "0 2 15 * *", "slug": "monthly-day-15-0200"}, id="monthly-day"
    ),
    pytest.param(
        "monthly on last day at 23:00",
        {"cron": "0 23 L * *", "slug": "monthly-last-day-2300"},
        id="monthly-last-day",
    ),
    pytest.param(
        "monthly on last weekday at 18:00",
        {
            "rrule": "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;BYHOUR=18;BYMINUTE=0;BYSECOND=0",
            "slug": "monthly-last-weekday-1800",
        },
        id="monthly-last-weekday",
    ),
    pytest.param("cron 0 2 * * *", {"cron": "0 2 * * *", "slug": "cron-0-2-x-x-x"}, id="cron"),
]


@pytest.mark.parametrize(("preset", "native"), PRESETS)
def test_preset_gives_one_exact_native_schedule(preset: str, native: dict[str, Any]) -> None:
    zone = "Europe/Paris" if "Europe/Paris" in preset else "UTC"
    slug = native["slug"]
    kind = {key: value for key, value in native.items() if key != "slug"}
    assert parse_preset(preset) == {**kind, "timezone": zone, "slug": slug, "active": True}
    assert schedule_problems(parse_preset(preset)) == []


def test_zone_is_kept_and_utc_is_normalised() -> None:
    assert parse_preset("daily at 09:00 in Europe/Paris")["timezone"] == "Europe/Paris"
    assert parse_preset("daily at 09:00 in utc")["timezone"] == "UTC"


def test_every_7_minutes_is_even_across_the_hour() -> None:
    runs = next_runs(parse_preset("every 7 minutes"), n=4, after=utc(2026, 11, 22, 12, 55))
    # `*/7` would run at 12:56 then 13:00; the interval keeps 7 minutes across the hour.
    assert runs == [
        utc(2026, 11, 22, 12, 56),
        utc(2026, 11, 22, 13, 3),
        utc(2026, 11, 22, 13, 10),
        utc(2026, 11, 22, 13, 17),
    ]


def test_monthly_last_day() -> None:
    runs = next_runs(parse_preset("monthly on last day at 09:00"), n=3, after=AFTER)
    assert runs == [utc(2026, 11, 30, 9), utc(2026, 12, 31, 9), utc(2027, 1, 31, 9)]


def test_monthly_last_weekday_is_an_rrule_at_the_hour() -> None:
    runs = next_runs(parse_preset("monthly on last weekday at 18:00"), n=3, after=AFTER)
    assert runs == [utc(2026, 11, 30, 18), utc(2026, 12, 31, 18), utc(2027, 1, 29, 18)]


def test_weekdays_skip_the_weekend() -> None:
    runs = next_runs(parse_preset("weekdays at 08:30"), n=6, after=AFTER)  # Sunday 2026-11-22
    assert [run.day for run in runs] == [23, 24, 25, 26, 27, 30]
    assert all((run.hour, run.minute) == (8, 30) for run in runs)


def test_weekly_runs_on_the_ticked_days() -> None:
    runs = next_runs(parse_preset("weekly on mon,wed,fri at 09:00"), n=4, after=AFTER)
    assert runs == [utc(2026, 11, 23, 9), utc(2026, 11, 25, 9), utc(2026, 11, 27, 9), utc(2026, 11, 30, 9)]


def test_next_runs_are_strictly_after() -> None:
    assert next_runs(parse_preset("daily at 12:00"), n=1, after=AFTER) == [utc(2026, 11, 23, 12)]


@pytest.mark.parametrize(
    "preset",
    ["daily at 09:00 in Europe/Paris", "cron 0 9 * * * in Europe/Paris"],
    ids=["preset", "custom-cron"],
)
def test_paris_wall_clock_survives_dst(preset: str) -> None:
    winter = next_runs(parse_preset(preset), n=1, after=datetime(2027, 1, 10, tzinfo=PARIS))[0]
    summer = next_runs(parse_preset(preset), n=1, after=datetime(2027, 7, 10, tzinfo=PARIS))[0]
    assert (winter.hour, winter.isoformat()[-6:]) == (9, "+01:00")
    assert (summer.hour, summer.isoformat()[-6:]) == (9, "+02:00")


def test_every_3_days_keeps_its_local_hour_across_dst() -> None:
    runs = next_runs(
        parse_preset("every 3 days at 06:00 in Europe/Paris"), n=4, after=datetime(2026, 3, 20, tzinfo=PARIS)
    )
    assert [run.isoformat() for run in runs] == [
        "2026-03-20T06:00:00+01:00",
        "2026-03-23T06:00:00+01:00",
        "2026-03-26T06:00:00+01:00",
        "2026-03-29T06:00:00+02:00",
    ]


INVALID = [
    pytest.param(
        "hourly at :75", "minute 75 is out of range 0-59 in 'hourly at :75'", id="minute-out-of-range"
    ),
    pytest.param(
        "daily at 25:00", "hour 25 is out of range 0-23 in 'daily at 25:00'", id="hour-out-of-range"
    ),
    pytest.param("daily at 9am", "time '9am' is not HH:MM in 'daily at 9am'", id="time-not-hhmm"),
    pytest.param("every 0 minutes", "number of minutes 0 is too small", id="zero-minutes"),
    pytest.param("every 2 hours 75 minutes", "minute 75 is out of range 0-59", id="hours-extra-minutes"),
    pytest.param("weekly on mon,fun at 09:00", "day 'fun' is not a weekday", id="unknown-weekday"),
    pytest.param("monthly on day 31 at 02:00", "day 31 is missing from some months", id="day-31"),
    pytest.param("monthly on day 0 at 02:00", "day 0 is out of range 1-31", id="day-0"),
    pytest.param("daily at 02:00 in Mars/Olympus", "time zone 'Mars/Olympus' is unknown", id="unknown-zone"),
    pytest.param("cron 0 9 LW * *", "cron '0 9 LW * *' is not valid in Prefect", id="cron-lw"),
    pytest.param("cron 0 9 H * *", "cron '0 9 H * *' is not valid in Prefect", id="cron-hashed"),
    pytest.param("twice a day", "'twice a day' is not a schedule preset; write one of:", id="unknown-preset"),
    pytest.param("  ", "The schedule preset is empty", id="empty"),
]


@pytest.mark.parametrize(("preset", "message"), INVALID)
def test_invalid_presets_say_what_where_and_how_to_fix(preset: str, message: str) -> None:
    with pytest.raises(ValueError, match="; write") as error:
        parse_preset(preset)
    assert message in str(error.value)


WARNINGS = [
    pytest.param("0 9 * * * *", "has 6 fields: Prefect reads the 6th ('*') as seconds", id="six-fields"),
    pytest.param(
        "*/7 * * * *", "minute step '*/7' does not divide 60: it restarts every hour", id="minute-step"
    ),
    pytest.param("0 */5 * * *", "hour step '*/5' does not divide 24", id="hour-step"),
    pytest.param("0 9 H * *", "H (hashed) and R (random) are not supported", id="hashed"),
    pytest.param("0 9 LW * *", "W (nearest weekday, LW) is not supported", id="last-weekday"),
    pytest.param("0 9 15W * *", "W (nearest weekday, LW) is not supported", id="nearest-weekday"),
    pytest.param("0 9 * * FRI#L", "`#L`/`5L` are not supported", id="hash-last"),
    pytest.param("0 9 1-7 * MON", "Prefect runs on either day (day_or: true)", id="day-or"),
]


@pytest.mark.parametrize(("expression", "message"), WARNINGS)
def test_cron_traps_are_warned(expression: str, message: str) -> None:
    assert any(message in warning for warning in cron_warnings(expression)), cron_warnings(expression)


@pytest.mark.parametrize(
    "expression", ["*/15 * * * *", "0 */6 * * *", "0 9 L * *", "0 9 * * THU,FRI", "@daily", "0 9 * * L5"]
)
def test_sound_crons_have_no_warning(expression: str) -> None:
    assert cron_warnings(expression) == []


def test_check_passes_on_the_repository_prefect_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # no server: blocks not checked (warn)
        assert main(["check"]) == 0
    assert "0 error(s)" in capsys.readouterr().out


def _deployment(name: str, job_name: str, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "entrypoint": f"{REPO}/flows/import_csv_from_ftp.py:import_csv_from_ftp",
        "work_pool": {"name": "local-process"},
        "concurrency_limit": {"limit": 1, "collision_strategy": "ENQUEUE"},
        "schedules": [parse_preset("daily at 02:00")],
        "parameters": {
            "job": {
                "name": job_name,
                "connection": "erp-ftp",
                "entity": "products",
                "source": {"kind": "file", "file_path": "in/p.csv"},
                "csv": {"delimiter": ";"},
            }
        },
    }
    return {**entry, **overrides}


def _check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *deployments: dict[str, Any]
) -> tuple[int, str]:
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump({"deployments": list(deployments)}), encoding="utf-8")
    code = main(["check", str(path)])
    return code, capsys.readouterr().out


def _row(output: str, deployment: str, text: str) -> str:
    rows = [line for line in output.splitlines() if line.startswith(deployment) and text in line]
    assert rows, output
    return rows[0]


def test_check_fails_on_a_duplicate_job_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _check(tmp_path, capsys, _deployment("a-job", "a-job"), _deployment("b-job", "a-job"))
    assert code == 1
    assert "error" in _row(out, "b-job", "parameters.job.name 'a-job' is used by 2 jobs")
    assert "error" in _row(out, "b-job", "not the deployment name; set it to 'b-job'")


def test_check_fails_on_a_schedule_without_slug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schedules = [{"cron": "0 2 * * *", "timezone": "UTC"}, {"interval": 600}]
    code, out = _check(tmp_path, capsys, _deployment("a-job", "a-job", schedules=schedules))
    assert code == 1
    assert "error" in _row(out, "a-job", "schedules[0]: no `slug`")
    assert "error" in _row(out, "a-job", "schedules[1]: interval without `anchor_date`")


def test_check_fails_on_an_invalid_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _deployment("a-job", "a-job")
    bad["parameters"]["job"]["csv"] = {"delimiter": "|"}
    code, out = _check(tmp_path, capsys, bad)
    assert code == 1
    assert "error" in _row(out, "a-job", "parameters.job.csv.delimiter: Input should be ',' or ';'")


def test_check_flags_concurrency_traps_and_remote_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = _deployment(
        "a-job",
        "a-job",
        work_pool={"name": "k8s"},
        concurrency_limit={"limit": 1, "collision_strategy": "CANCEL_OLD"},
        schedules=[{"cron": "*/7 * * * *", "slug": "x"}],
    )
    code, out = _check(tmp_path, capsys, remote)
    assert code == 1
    assert "error" in _row(out, "a-job", "collision_strategy 'CANCEL_OLD' is not one of ENQUEUE, CANCEL_NEW")
    assert "warn" in _row(out, "a-job", "embedded SQLite database is written inside the worker of pool 'k8s'")
    assert "warn" in _row(out, "a-job", "minute step '*/7' does not divide 60")
