"""Rate 20 trials through the real page in headless Chromium, with a SIGKILL of the server.

Needs the Python package ``playwright`` and a Chromium (Debian: ``apt-get install
chromium``; never ``playwright install``). Set ``BRAINLDM_CHROMIUM`` to use another
executable. Skipped, saying which is missing, when either is absent.
"""

import os
import shutil
import sqlite3

import pandas as pd
import pytest

pytest.importorskip("flask", reason="the rating app needs Flask (pip install -e '.[rate]')")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs playwright (pip install playwright)"
)

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
BREAK_EVERY = 8
TIMEOUT_MS = 15_000


def _chromium():
    candidates = [os.environ.get("BRAINLDM_CHROMIUM"), shutil.which("chromium"),
                  shutil.which("chromium-browser"), "/usr/bin/chromium"]  # fmt: skip
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    pytest.skip(
        "the browser test needs Chromium: apt-get install -y chromium (or BRAINLDM_CHROMIUM)"
    )


@pytest.fixture
def browser(localhost):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screen(page, name):
    page.wait_for_selector(f'body[data-screen="{name}"]', timeout=TIMEOUT_MS)


def rate_one(page, key, n_done):
    """Wait for a shown trial, answer it with ``key``; return the trial token."""
    page.wait_for_selector('body[data-screen="trial"][data-ready="1"]', timeout=TIMEOUT_MS)
    trial = page.get_attribute("body", "data-trial")
    for img in ("#img-recon", "#img-left", "#img-right"):
        assert page.eval_on_selector(img, "el => el.complete && el.naturalWidth > 0")
    page.keyboard.press(key)
    page.wait_for_function(
        "n => document.body.dataset.nDone === String(n)", arg=n_done, timeout=TIMEOUT_MS
    )
    if n_done % BREAK_EVERY == 0:
        screen(page, "break")
        assert f"{n_done} of 24 done" in page.inner_text("#break-text")
        page.keyboard.press(" ")
    return trial


@pytest.mark.slow
def test_rate_20_trials_kill_restart_resume(run_dir, browser, server_process, capsys):
    from brainldm.cli._rate import main_rate

    extra = ["--break-every", str(BREAK_EVERY)]
    server = server_process(run_dir, extra=extra)
    page = browser.new_page()
    page.goto(server.url)
    screen(page, "login")
    page.fill("#name", "alice")
    page.click("#login-form button[type=submit]")
    screen(page, "code")
    code = page.inner_text("#resume-code")
    page.keyboard.press("Enter")
    screen(page, "instructions")
    assert f"every {BREAK_EVERY} answers" in page.inner_text("#break-note")
    page.keyboard.press(" ")

    answers = []  # (trial token, choice)
    keys = {"f": "left", "ArrowLeft": "left", "j": "right", "ArrowRight": "right"}
    sequence = ["f", "j", "ArrowLeft", "ArrowRight", "j"] * 4
    for i in range(12):
        answers.append((rate_one(page, sequence[i], i + 1), keys[sequence[i]]))
    assert page.inner_text("#progress-text") == "12 / 24"

    # The server dies; the rater answers the trial on screen while it is down.
    page.wait_for_selector('body[data-screen="trial"][data-ready="1"]', timeout=TIMEOUT_MS)
    pending = page.get_attribute("body", "data-trial")
    server.kill()
    page.keyboard.press(sequence[12])
    screen(page, "offline")
    server = server_process(run_dir, port=server.port, extra=extra)
    page.wait_for_function("() => document.body.dataset.nDone === '13'", timeout=TIMEOUT_MS)
    answers.append((pending, keys[sequence[12]]))

    for i in range(13, 17):
        answers.append((rate_one(page, sequence[i], i + 1), keys[sequence[i]]))

    # Stop (reload the page), then resume: the open trial comes back.
    page.wait_for_selector('body[data-screen="trial"][data-ready="1"]', timeout=TIMEOUT_MS)
    open_trial = page.get_attribute("body", "data-trial")
    page.reload()
    screen(page, "instructions")
    assert page.inner_text("#progress-text") == "17 / 24"
    page.keyboard.press(" ")
    page.wait_for_selector('body[data-screen="trial"][data-ready="1"]', timeout=TIMEOUT_MS)
    assert page.get_attribute("body", "data-trial") == open_trial
    for i in range(17, 20):
        answers.append((rate_one(page, sequence[i], i + 1), keys[sequence[i]]))

    # Another browser (no saved token): the name alone is refused, name + code resumes.
    other = browser.new_page()
    other.goto(server.url)
    screen(other, "login")
    other.fill("#name", "alice")
    other.click("#login-form button[type=submit]")
    other.wait_for_function(
        "() => document.querySelector('#login-error').textContent.includes('resume code')"
    )
    other.fill("#code", code)
    other.click("#login-form button[type=submit]")
    screen(other, "instructions")
    assert other.inner_text("#progress-text") == "20 / 24"
    server.kill()

    # Every answer is in the database, once, as given.
    with sqlite3.connect(run_dir / "rating" / "ratings.sqlite") as con:
        rows = con.execute(
            "SELECT t.token, j.choice, j.response_time_ms, j.rater, j.condition FROM judgements j "
            "JOIN trials t USING (trial_id) ORDER BY t.ordinal"
        ).fetchall()
    assert [(r[0], r[1]) for r in rows] == answers
    assert len({r[0] for r in rows}) == 20
    assert all(r[3] == "alice" and r[2] > 0 for r in rows)

    # ... and in `rate results`.
    assert main_rate(["results", "--run", str(run_dir)]) == 0
    pooled = pd.read_csv(run_dir / "rating" / "rating_pooled.csv").set_index("condition")
    per_condition = pd.Series([r[4] for r in rows]).value_counts()
    assert pooled["n_judgements"].sum() == 20
    assert pooled["n_judgements"].to_dict() == per_condition.to_dict()
    per_rater = pd.read_csv(run_dir / "rating" / "rating_per_rater.csv")
    assert (
        per_rater["rater"].unique().tolist() == ["alice"] and per_rater["n_judgements"].sum() == 20
    )
    assert "accuracy" in capsys.readouterr().out
