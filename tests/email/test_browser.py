"""The unsubscribe pages in a real headless browser: follow the link from a received email, click, undo.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); skipped with that reason
only where neither can be found.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.serving import make_server

from adapters.smtp import SmtpAdapter
from gateway.app import create_app
from tests.email.conftest import SmtpServer, email_config
from tests.email.helpers import ME_NORMAL, api_send, deliver, html_part
from tests.gateway.helpers import ledger, opt_out_state

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module, with a fresh profile."""
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("no headless browser here: apt-get install chromium chromium-driver (.ci/run does)")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.TemporaryDirectory()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile.name}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()
    profile.cleanup()


@dataclass
class Live:
    """The gateway served over HTTP on 127.0.0.1, with public_url pointing at it."""

    base: str
    app: Any
    gw: Any


@pytest.fixture
def live(db_url: str, smtp: SmtpServer, env: dict[str, str]) -> Iterator[Live]:
    holder: dict[str, Any] = {}

    def wsgi(environ: Any, start_response: Any) -> Any:
        return holder["app"](environ, start_response)

    # Bind first, so the links in emails can name the real port.
    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    app = create_app(email_config(db_url, smtp.port, public_url=base), env)
    holder["app"] = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    gw = app.extensions["optout"]
    yield Live(base, app, gw)
    server.shutdown()
    thread.join()
    for adapter in gw.adapters.values():
        if isinstance(adapter, SmtpAdapter):
            adapter.close()
    gw.db.dispose()


def received_link(live: Live, smtp: SmtpServer, **fields: Any) -> str:
    """Send an email through the API and the worker; the visible Unsubscribe link in its HTML."""
    assert api_send(live.app.test_client(), **fields).status_code == 202
    assert deliver(live.gw) == 1
    found = re.search(r'<a href="([^"]+)">Unsubscribe</a>', html_part(smtp.messages[-1]))
    assert found and found.group(1).startswith(live.base + "/u/")
    return found.group(1)


def heading(browser: Any) -> str:
    return str(browser.find_element(By.TAG_NAME, "h1").text)


def wait(browser: Any, condition: Any) -> None:
    """Poll until ``condition(browser)`` holds; an element replaced by the next page is simply re-read."""
    WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def wait_for_heading(browser: Any, text: str) -> None:
    wait(browser, lambda b: heading(b) == text)


def out(live: Live, scope: str = "acme") -> bool:
    state = opt_out_state(live.gw, ME_NORMAL, scope, channel="email")
    return bool(state and state.opted_out)


def test_opening_the_link_unsubscribes_nobody_the_button_does_and_undo_works(
    browser: Any, live: Live, smtp: SmtpServer
) -> None:
    browser.get(received_link(live, smtp))
    wait_for_heading(browser, "Unsubscribe")
    page = browser.page_source
    assert "j***@example.org" in page and ME_NORMAL not in page
    assert not out(live) and ledger(live.gw, ME_NORMAL) == []

    browser.find_element(By.ID, "confirm").click()
    wait_for_heading(browser, "You are unsubscribed")
    assert out(live)
    assert [(e.action, e.source) for e in ledger(live.gw, ME_NORMAL)] == [("opt_out", "email_link")]
    assert api_send(live.app.test_client()).status_code == 409

    browser.find_element(By.ID, "undo").click()
    wait_for_heading(browser, "You are subscribed again")
    assert not out(live)
    assert api_send(live.app.test_client()).status_code == 202


def test_preference_page_by_keyboard_leaves_a_topic_then_everything_then_rejoins(
    browser: Any, live: Live, smtp: SmtpServer
) -> None:
    browser.get(received_link(live, smtp, topic="newsletters"))
    wait_for_heading(browser, "Unsubscribe")
    browser.find_element(By.LINK_TEXT, "choose which emails you get").click()
    wait_for_heading(browser, "Email preferences")
    assert not out(live, "acme/newsletters")

    # Buttons work from the keyboard alone: focus, Enter.
    browser.find_element(By.ID, "leave-newsletters").send_keys(Keys.ENTER)
    wait(browser, lambda b: "You left Newsletters." in b.page_source)
    assert out(live, "acme/newsletters") and not out(live, "acme/offers") and not out(live)

    browser.find_element(By.ID, "leave-all").click()
    wait(browser, lambda b: b.find_elements(By.ID, "join-all"))
    assert out(live)

    browser.find_element(By.ID, "join-all").click()
    wait(browser, lambda b: b.find_elements(By.ID, "leave-all"))
    assert not out(live) and out(live, "acme/newsletters"), "rejoining everything keeps the topic choice"
    sources = {e.source for e in ledger(live.gw, ME_NORMAL)}
    assert sources == {"email_link"}
