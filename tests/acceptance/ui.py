"""Drive the Prefect UI's Custom run form in a real Chromium, as an operator does (prefect 3.8.8).

Only what an operator sees and touches: the deployment's page, its **Run** button, **Custom run**, the
form's own inputs, **Submit**, and the toast that follows. Nothing is injected into the page (no
`page.evaluate`) and nothing is created through the API. The browser is Debian's `chromium`
(`/usr/bin/chromium`), never one Playwright downloads.

Selectors, chosen to survive UI restyling:

- buttons and menu items by their role and visible name (`Run`, `Custom run`, `Submit`, `View run`);
- a form field by its label, which Prefect builds from the job model's field title (`Reject Threshold
  Percent`, plus ` (Optional)` when the field has a default): the label is ours, not the UI's. The v2
  UI ties each label to its input (`for`/`id`), so `get_by_label` finds it. The v1 UI's labels point
  at ids its inputs do not carry, so a v1 field is the first input of the form row (`.p-label`, the
  design system's label component) whose label reads that text;
- the form is ready when its job's `Name` field holds the job's name and no placeholder is left (the
  v2 form's JSON editors load after the rest: `[data-slot="skeleton"]` until then);
- success is the "View run" button of the "<run name> scheduled to start now" toast; a refusal is
  the v2 error toast (`data-type="error"`, sonner) or the v1 field messages (`.p-label__message--failed`)
  and error toasts.

The run is identified by the name the form's "Run Name" field holds when it is submitted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from playwright.sync_api import Locator, Page, Response, ViewportSize, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# A slow 2-core machine running a server, two workers and their flow runs: generous, never tight.
ACTION_MS = 30_000
NAVIGATION_MS = 60_000
# The docs' screenshots are 1400 px wide, 2400 px tall (the top of the form).
VIEWPORT: ViewportSize = {"width": 1400, "height": 2400}

Version = Literal["v1", "v2"]


class FormRefusedError(AssertionError):
    """The form did not create the run: what the UI said, and what it sent."""


@contextmanager
def chromium_page() -> Iterator[Page]:
    """A page of a headless Debian Chromium with the suite's timeouts; closed afterwards."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(ACTION_MS)
            context.set_default_navigation_timeout(NAVIGATION_MS)
            yield context.new_page()
        finally:
            browser.close()


def field_label(text: str) -> re.Pattern[str]:
    """A field label: its title, with or without the ` (Optional)` the UI adds."""
    return re.compile(rf"^\s*{re.escape(text)}( \(Optional\))?\s*$")


@dataclass
class RunForm:
    """The Custom run form of one deployment, in the v1 or the v2 UI."""

    page: Page
    version: Version
    deployment_name: str
    sent: list[dict[str, Any]] = field(default_factory=list)  # what the form POSTed, for messages

    @classmethod
    def open(cls, page: Page, ui_url: str, version: Version, deployment_id: str, job_name: str) -> RunForm:
        """Open the deployment's page, then Run > Custom run; return once the job's values are shown."""
        form = cls(page, version, job_name)
        page.on("response", form._record)
        prefix = "/v2" if version == "v2" else ""
        page.goto(f"{ui_url}{prefix}/deployments/deployment/{deployment_id}")
        page.get_by_role("button", name="Run", exact=True).click()
        if version == "v2":
            page.get_by_role("menuitem", name="Custom run", exact=True).click()
        else:  # v1: a button inside the menu's link
            page.get_by_role("button", name="Custom run", exact=True).click()
        page.wait_for_url(re.compile(rf"/deployments/deployment/{deployment_id}/run\b"))
        # The form is filled from the deployment once it has loaded: the job's name is the sign.
        expect(form.field("Name"), "the form shows the deployment's job").to_have_value(
            job_name, timeout=ACTION_MS
        )
        expect(page.get_by_role("button", name="Submit", exact=True)).to_be_enabled(timeout=ACTION_MS)
        # v2 shows a placeholder (shadcn's skeleton) until its JSON editors are loaded.
        expect(page.locator("[data-slot='skeleton']")).to_have_count(0, timeout=ACTION_MS)
        return form

    def field(self, title: str) -> Locator:
        """The first input of the form whose label is `title` (the job's fields come before nested ones)."""
        if self.version == "v2":
            return self.page.get_by_label(field_label(title)).first
        label = self.page.locator("label").filter(has_text=field_label(title))
        row = label.locator(
            "xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' p-label ')][1]"
        )
        return row.first.locator("input, textarea").first

    def run_name(self) -> str:
        """The name the run will get (the form's "Run Name" field)."""
        name = self.field("Run Name").input_value().strip()
        assert name, f"{self.deployment_name}: the form's Run Name is empty"
        return name

    def fill(self, title: str, value: str) -> None:
        """Replace a field's value, as an operator types it, and check the field shows it."""
        box = self.field(title)
        box.fill(value)
        expect(box).to_have_value(value, timeout=ACTION_MS)

    def option(self, title: str) -> Locator:
        """The tab of one option of a union field (a call's pattern), by its title (v2)."""
        return self.page.get_by_role("tab", name=title, exact=True).first

    def choose(self, title: str) -> None:
        """Click one option of a union field, as an operator picks it."""
        self.option(title).click()

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """Save what the operator sees (the whole form, or the top of it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def submit(self) -> str:
        """Click Submit; return the created run's name, or raise `FormRefusedError` with the UI's words."""
        name = self.run_name()
        created = self.page.get_by_role("button", name="View run", exact=True)
        refused = self.page.locator(
            "[data-sonner-toast][data-type='error'], .p-label__message--failed, .p-toast__icon--error"
        )
        try:
            self.page.get_by_role("button", name="Submit", exact=True).click()
            try:
                expect(created.or_(refused).first).to_be_visible(timeout=ACTION_MS)
            except AssertionError as exc:
                raise FormRefusedError(f"{self._who()}: no answer to Submit.{self._sent_text()}") from exc
            if refused.count() and not created.count():
                said = "; ".join(text.strip() for text in refused.all_inner_texts() if text.strip())
                raise FormRefusedError(
                    f"{self._who()} refused the run: {said or 'an error'}{self._sent_text()}"
                )
        finally:
            self.page.remove_listener("response", self._record)
        return name

    def _who(self) -> str:
        return f"the {self.version} Custom run form of {self.deployment_name}"

    def _record(self, response: Response) -> None:
        if response.request.method == "POST" and response.url.endswith("/create_flow_run"):
            try:
                body: Any = json.loads(response.request.post_data or "null")
                answer = response.text()[:500]
            except Exception as exc:  # diagnostics only, never the test's outcome
                body, answer = None, f"(unreadable: {exc})"
            self.sent.append(
                {"status": response.status, "parameters": (body or {}).get("parameters"), "answer": answer}
            )

    def _sent_text(self) -> str:
        if not self.sent:
            return " The form sent no request."
        last = self.sent[-1]
        return f"\nIt sent (HTTP {last['status']}): {json.dumps(last['parameters'])}\nThe server said: {last['answer']}"


def run_row(page: Page, flow_run_id: str) -> Locator:
    """A run's row in a runs list (v1 or v2): the box around the link to the run that also shows its parameters.

    By the link's address: runs of one job share its name (`flow_run_name` is the job's name).
    """
    link = page.locator(f"a[href$='/runs/flow-run/{flow_run_id}']").first
    return link.locator("xpath=ancestor::*[.//*[contains(normalize-space(.), 'Parameter')]][1]")
