"""The web console in a real headless Chromium, against a real server on tiny models.

Each test drives the page as a person would (typing, clicking, the confirmation dialog, a file
picker) and checks the result both on the page and in the edit store behind it. The screenshots in
docs/console/ (used by the README) are taken here, with SERAC_UPDATE_SCREENSHOTS=1. Skipped, with the
reason, only when no Chromium is installed; .ci/run installs it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from serac.base import GREEDY

from .browser import missing, start_chromium, stop_chromium
from .conftest import READ_KEY, WRITE_KEY

# Screenshots go to a temp folder, or to docs/console/ (the README's) with SERAC_UPDATE_SCREENSHOTS=1,
# so an ordinary test run leaves the committed PNGs alone.
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "console"
    if os.environ.get("SERAC_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "serac-console-screenshots"
)
PM = "Who is the prime minister of Freedonia?"
UNRELATED = "How many legs does a spider have?"
WAIT_S = 30


def chat(question):
    return [{"role": "user", "content": question}]


@pytest.fixture(scope="module")
def browser():
    reason = missing()
    if reason:
        pytest.skip(reason)
    driver = start_chromium()
    yield driver
    stop_chromium(driver)


# -- helpers -------------------------------------------------------------------------------------------
def wait(driver, condition, message="the page did not get there"):
    """Until ``condition`` holds; an element the page re-rendered meanwhile (stale) means "not yet"."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    waiter = WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))
    return waiter.until(lambda d: condition(d), message)


def click_first(driver, selector):
    """Click the first element matching ``selector``, again if the page re-rendered it meanwhile."""

    def attempt(d):
        css(d, selector)[0].click()
        return True

    wait(driver, attempt, f"could not click {selector}")


def settle(driver):
    """Wait until the page has no API request in flight (it marks the body aria-busy meanwhile)."""
    wait(driver, lambda d: d.execute_script("return document.body.getAttribute('aria-busy')") == "false")


def by_id(driver, element_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def text_of(driver, element_id):
    return by_id(driver, element_id).text


def type_into(driver, element_id, text):
    field = by_id(driver, element_id)
    field.clear()
    field.send_keys(text)


def open_console(driver, server, signed_in=True):
    driver.get(server.url + "/ui")
    driver.execute_script("sessionStorage.clear()")
    driver.get(server.url + "/ui")
    if signed_in:
        wait(driver, lambda d: by_id(d, "main").is_displayed() and "live edits" in text_of(d, "who"))
    settle(driver)


def table_ids(driver, table="edits-table"):
    return [int(row.get_attribute("data-edit-id")) for row in css(driver, f"#{table} tbody tr[data-edit-id]")]


def confirm_dialog(driver, accept):
    wait(driver, lambda d: by_id(d, "confirm").is_displayed(), "no confirmation dialog")
    by_id(driver, "confirm-ok" if accept else "confirm-cancel").click()
    wait(driver, lambda d: not by_id(d, "confirm").is_displayed())


def screenshot(driver, name):
    """A full-page PNG in SHOTS (the window grows to the page's height for the shot)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(full + 140, 600), 2400))
    try:
        driver.save_screenshot(str(SHOTS / f"{name}.png"))
    finally:
        driver.set_window_size(width, height)


def visible_controls(driver):
    settle(driver)
    return [
        e
        for e in css(driver, "a[href], button, input, select, textarea, [tabindex]:not([tabindex='-1'])")
        if e.is_displayed() and e.is_enabled()
    ]


# -- the flows the issue names ------------------------------------------------------------------------------
def test_add_an_edit_then_ask_it_and_an_unrelated_question(server, browser):
    open_console(browser, server)
    type_into(browser, "add-input", PM)
    type_into(browser, "add-target", "Ana Gomez")
    type_into(browser, "add-meta", '{"author": "ana"}')
    by_id(browser, "add-form").submit()
    wait(browser, lambda d: "Added edit #" in text_of(d, "add-status"))
    (edit,) = server.editor.store.list()
    assert (edit.input, edit.target, edit.metadata) == (PM, "Ana Gomez", {"author": "ana"})
    wait(browser, lambda d: table_ids(d) == [edit.id])
    assert "author: \"ana\"" in css(browser, "#edits-table tbody tr")[0].text

    by_id(browser, "tab-ask").click()
    type_into(browser, "ask-q", PM)
    by_id(browser, "ask-form").submit()
    wait(browser, lambda d: "counterfactual" in text_of(d, "ask-source"))
    expected = server.editor.generate([chat(PM)])[0]
    assert expected.source == "counterfactual" and expected.edit_id == edit.id
    assert text_of(browser, "ask-edit").startswith(f"#{edit.id}: ")
    assert text_of(browser, "ask-score") == f"{expected.score:.3f}"
    assert text_of(browser, "ask-threshold") == "0.700"
    assert by_id(browser, "ask-edited").get_attribute("textContent") == expected.text
    assert by_id(browser, "ask-base").get_attribute("textContent") == server.editor.base.generate([chat(PM)], GREEDY)[0]
    bars = css(browser, "#ask-chart svg rect")
    assert len(bars) == len(expected.candidates) and "fired" in bars[0].get_attribute("class")
    assert css(browser, "#ask-chart svg line.threshold")
    screenshot(browser, "ask")

    type_into(browser, "ask-q", UNRELATED)
    by_id(browser, "ask-form").submit()
    wait(browser, lambda d: "base model" in text_of(d, "ask-source"))
    base = server.editor.base.generate([chat(UNRELATED)], GREEDY)[0]
    assert text_of(browser, "ask-edit") == "none"
    assert by_id(browser, "ask-edited").get_attribute("textContent") == base
    assert by_id(browser, "ask-base").get_attribute("textContent") == base


def test_bulk_upload_with_a_bad_row_writes_nothing(server, browser, tmp_path):
    bad = tmp_path / "edits.csv"
    bad.write_text(
        "input,target,author\n"
        "Who wrote Faust?,Goethe,ana\n"
        ",an answer without a question,ana\n"
        "Capital of Freedonia?,Fredville,lee\n"
    )
    before = (server.editor.version, server.editor.store.count())
    open_console(browser, server)
    by_id(browser, "bulk-file").send_keys(str(bad))
    by_id(browser, "bulk-form").submit()
    wait(browser, lambda d: css(d, "#bulk-result table.errors tbody tr"))
    rows = [r.text for r in css(browser, "#bulk-result table.errors tbody tr")]
    assert rows == ["3 edit input is empty; give a non-blank input"]
    assert "3 row(s), 2 valid, 1 with errors" in text_of(browser, "bulk-result")
    assert not by_id(browser, "bulk-write").is_enabled()
    assert (server.editor.version, server.editor.store.count()) == before  # nothing written
    screenshot(browser, "bulk")

    good = tmp_path / "edits.jsonl"
    good.write_text('{"input": "Who wrote Faust?", "target": "Goethe"}\n{"input": "Capital of Freedonia?", "target": "Fredville"}\n')
    by_id(browser, "bulk-file").send_keys(str(good))
    by_id(browser, "bulk-form").submit()
    wait(browser, lambda d: by_id(d, "bulk-write").is_enabled())
    assert by_id(browser, "bulk-write").text == "Write 2 edits"
    by_id(browser, "bulk-write").click()
    wait(browser, lambda d: "Wrote 2 edits" in text_of(d, "bulk-status"))
    assert server.editor.version == before[0] + 1 and server.editor.store.count() == before[1] + 2
    assert len(table_ids(browser)) == 2


def test_remove_asks_first(server, browser):
    edit = server.editor.add(PM, "Ana Gomez")
    open_console(browser, server)
    wait(browser, lambda d: table_ids(d) == [edit.id])
    by_id(browser, "edits-table").find_element("css selector", f"button[aria-label='Remove edit {edit.id}']").click()
    assert "Remove edit #" in text_of(browser, "confirm-text")
    confirm_dialog(browser, accept=False)
    assert server.editor.store.count() == 1 and table_ids(browser) == [edit.id]
    by_id(browser, "edits-table").find_element("css selector", f"button[aria-label='Remove edit {edit.id}']").click()
    confirm_dialog(browser, accept=True)
    wait(browser, lambda d: "Removed edit" in text_of(d, "edits-status"))
    assert server.editor.store.count() == 0 and table_ids(browser) == []


def test_roll_back_from_the_timeline(server, browser):
    keep = server.editor.add("Who wrote Faust?", "Goethe")
    kept_at = server.editor.version
    drop = server.editor.add(PM, "Ana Gomez", {"author": "ana"})
    open_console(browser, server)
    wait(browser, lambda d: table_ids(d) == [drop.id, keep.id])
    by_id(browser, "tab-history").click()
    button = f"#timeline li[data-version='{kept_at}'] button"
    wait(browser, lambda d: [b.text for b in css(d, button)] == [f"Roll back to version {kept_at}"])
    screenshot(browser, "history")
    click_first(browser, button)
    confirm_dialog(browser, accept=True)
    wait(browser, lambda d: "Rolled back" in text_of(d, "history-status"))
    assert [e.id for e in server.editor.store.list()] == [keep.id]
    newest = "#timeline > li"
    wait(browser, lambda d: css(d, newest)[0].get_attribute("data-version") == str(server.editor.version)
         and "rollback" in css(d, newest)[0].text, "the timeline does not show the rollback first")
    by_id(browser, "tab-edits").click()
    assert table_ids(browser) == [keep.id]  # the edit is gone from the table too


def test_which_edits_would_fire_and_conflicts(server, browser):
    old = server.editor.add("Which company makes the Widget X?", "Acme", {"author": "ana"})
    new = server.editor.add("Which company now makes the Widget X?", "Globex", {"author": "lee"})
    server.editor.add("Where is the Widget X made?", "Ohio")
    server.editor.add(UNRELATED, "Eight")
    open_console(browser, server)
    type_into(browser, "scope-q", "Which company makes Widget X?")
    by_id(browser, "scope-form").submit()
    wait(browser, lambda d: "would answer" in text_of(d, "scope-result"))
    decision = server.editor.route([chat("Which company makes Widget X?")])[0]
    assert f"Edit #{decision.edit.id} would answer" in text_of(browser, "scope-result")
    assert decision.edit.id == new.id  # newest of the fact, although the old phrasing is closer
    shown = {int(r.get_attribute("data-edit-id")): r.text for r in css(browser, "#scope-result tbody tr")}
    assert set(shown) == {c.edit.id for c in decision.candidates}
    for c in decision.candidates:
        assert f"{c.score:.3f}" in shown[c.edit.id]

    by_id(browser, "edits-table").find_element("css selector", f"button[aria-label='Conflicts for edit {old.id}']").click()
    wait(browser, lambda d: by_id(d, "conflicts").is_displayed())
    assert f"edit #{new.id} answers" in text_of(browser, "conflicts-summary")
    assert [int(r.get_attribute("data-edit-id")) for r in css(browser, "#conflicts-table tr.fired")] == [new.id]
    screenshot(browser, "edits")


def test_search_and_paging(server, browser):
    made = server.editor.add_many([(f"Question number {i}?", f"Answer {i}") for i in range(45)])
    open_console(browser, server)
    wait(browser, lambda d: text_of(d, "page-info") == "1–20 of 45")
    assert not by_id(browser, "page-prev").is_enabled()
    by_id(browser, "page-next").click()
    wait(browser, lambda d: text_of(d, "page-info") == "21–40 of 45")
    type_into(browser, "search-q", "number 7")
    by_id(browser, "search-form").submit()
    wait(browser, lambda d: text_of(d, "page-info") == "1–1 of 1")
    assert table_ids(browser) == [made[7].id]


def test_a_read_key_gets_a_read_only_console(auth_server, browser):
    with auth_server.client(WRITE_KEY) as writer:
        writer.post("/v1/edits/rollback", json={"version": 0})
        writer.post("/v1/edits", json={"input": PM, "target": "Ana Gomez"})
    open_console(browser, auth_server, signed_in=False)
    wait(browser, lambda d: by_id(d, "login").is_displayed())
    assert not by_id(browser, "main").is_displayed()

    type_into(browser, "login-key", "not-the-right-key")
    by_id(browser, "login-form").submit()
    wait(browser, lambda d: "invalid API key" in text_of(d, "login-status"))

    type_into(browser, "login-key", READ_KEY)
    by_id(browser, "login-form").submit()
    wait(browser, lambda d: by_id(d, "main").is_displayed() and "read-only" in text_of(d, "who"))
    wait(browser, lambda d: len(table_ids(d)) == 1)
    assert READ_KEY not in browser.current_url
    assert browser.execute_script("return sessionStorage.getItem('serac.apiKey')") == READ_KEY
    assert browser.execute_script("return localStorage.length") == 0
    screenshot(browser, "readonly")

    def write_controls():
        found = [e for e in css(browser, ".write-only, #add-form, #bulk-form") if e.is_displayed()]
        found += [b for b in css(browser, "button") if b.is_displayed() and (
            b.text.startswith(("Remove", "Roll back", "Add edit", "Write")))]
        return found

    assert write_controls() == []
    by_id(browser, "tab-history").click()
    wait(browser, lambda d: css(d, "#timeline > li"))
    assert write_controls() == []
    assert by_id(browser, "conflicts-close") is not None  # read views stay: conflicts, scope, ask
    by_id(browser, "tab-ask").click()
    assert by_id(browser, "ask-form").is_displayed()

    # the same page with a write key shows them: the check above can fail
    by_id(browser, "signout").click()
    wait(browser, lambda d: by_id(d, "login").is_displayed())
    assert browser.execute_script("return sessionStorage.getItem('serac.apiKey')") is None
    type_into(browser, "login-key", WRITE_KEY)
    by_id(browser, "login-form").submit()
    wait(browser, lambda d: by_id(d, "main").is_displayed() and "write key" in text_of(d, "who"))
    by_id(browser, "tab-edits").click()
    wait(browser, lambda d: write_controls())


# -- keyboard and labels ------------------------------------------------------------------------------------
def test_every_control_is_labelled_and_reachable_by_keyboard(server, browser):
    from axe_selenium_python import Axe
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    server.editor.add(PM, "Ana Gomez")
    open_console(browser, server)
    wait(browser, lambda d: len(table_ids(d)) == 1)
    for tab in ("edits", "ask", "history"):
        # reach the tab from the keyboard: focus the current tab, arrow keys move between tabs
        by_id(browser, "tab-edits").click()
        for _ in range(("edits", "ask", "history").index(tab)):
            ActionChains(browser).send_keys(Keys.ARROW_RIGHT).perform()
        wait(browser, lambda d, tab=tab: by_id(d, "panel-" + tab).is_displayed())
        if tab == "ask":
            type_into(browser, "ask-q", PM)
            by_id(browser, "ask-q").send_keys(Keys.ENTER)  # submit from the keyboard
            wait(browser, lambda d: by_id(d, "ask-result").is_displayed())

        controls = visible_controls(browser)
        unnamed = [c.get_attribute("outerHTML")[:80] for c in controls if not c.accessible_name.strip()]
        assert unnamed == [], f"controls without an accessible name on the {tab} tab: {unnamed}"

        # Tab through the whole page from the top: every visible, enabled control must get focus.
        browser.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
        reached = set()
        for _ in range(len(controls) + 15):
            ActionChains(browser).send_keys(Keys.TAB).perform()
            active = browser.switch_to.active_element
            reached.add(active.id)
        missed = [c.get_attribute("outerHTML")[:80] for c in controls if c.id not in reached]
        assert missed == [], f"not reachable with Tab on the {tab} tab: {missed}"

        axe = Axe(browser)
        axe.inject()
        results = axe.run(options="{runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}}")
        assert results["violations"] == [], axe.report(results["violations"])
        checked = {"button-name", "color-contrast"} | ({"label"} if tab != "history" else set())
        assert checked <= {rule["id"] for rule in results["passes"]}  # axe did run those rules here
