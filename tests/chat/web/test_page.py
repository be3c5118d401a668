"""The page in a real browser: two people in one room see each other's messages live."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from examples.chat.service import WELCOME_AUTHOR
from tests.chat.web.conftest import Served

PEOPLE = f'[data-testid=message]:not([data-author="{WELCOME_AUTHOR}"])'

REQUIRED = os.environ.get("BUSWAY_REQUIRE_BROWSER") == "1"


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless Chromium, the system's; skips without one (fails if it is required)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        why = "no chromium on PATH (Debian: apt-get install chromium)"
        if REQUIRED:
            pytest.fail(f"{why}, and BUSWAY_REQUIRE_BROWSER=1 says it must run", pytrace=False)
        pytest.skip(f"{why}: the browser test needs it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        yield launched
        launched.close()


def enter(browser: Browser, served: Served, name: str, room: str) -> Page:
    """Open the page, and join *room* as *name*."""
    page = browser.new_page()
    page.set_default_timeout(5_000)
    page.goto(served.url)
    page.get_by_test_id("name").fill(name)
    page.get_by_test_id("room").fill(room)
    page.get_by_test_id("join").click()
    expect(page.get_by_test_id("status")).to_have_text("live")
    return page


def say(page: Page, text: str) -> None:
    page.get_by_test_id("text").fill(text)
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("text")).to_have_value("")


def test_a_message_typed_in_one_page_appears_in_the_other(served: Served, browser: Browser) -> None:
    """Alice opens the room, Bob joins it; each sees the other's message, in order."""
    alice = enter(browser, served, "alice", "lobby")
    bob = enter(browser, served, "bob", "lobby")
    expect(alice.get_by_test_id("members")).to_have_text("alice, bob")
    say(alice, "hi bob")
    say(bob, "hi alice")
    for page in (alice, bob):
        people = page.locator(PEOPLE)
        expect(people).to_have_count(2)
        expect(people.locator(".text")).to_have_text(["hi bob", "hi alice"])
    # A dropped connection comes back after the last position the page saw.
    bob.evaluate("socket.close()")
    say(alice, "while you were away")
    expect(bob.locator(PEOPLE).locator(".text")).to_have_text(
        ["hi bob", "hi alice", "while you were away"]
    )
    expect(bob.get_by_test_id("status")).to_have_text("live")
    # A page opened later shows the history, then stays live.
    carol = enter(browser, served, "carol", "lobby")
    expect(carol.locator(PEOPLE).locator(".text")).to_have_text(
        ["hi bob", "hi alice", "while you were away"]
    )
    say(carol, "hello both")
    expect(alice.get_by_test_id("messages")).to_contain_text("hello both")
