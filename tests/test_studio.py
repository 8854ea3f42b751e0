"""Supa Studio, the dashboard `supa up` serves at `/` on the Management
API's port: its security over plain HTTP (sessions, CSRF, origins,
headers, escaping), then the flows in a real browser (Debian's Chromium
through chromedriver), with a screenshot of each page written to
`target/studio-screenshots/`."""

import contextlib
import hashlib
import json
import re
import time
import shutil
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait
from supabase import create_client

from conftest import ROOT, create_project

SHOTS = ROOT / "target" / "studio-screenshots"
XSS = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def studio(platform, **kw):
    return httpx.Client(base_url=platform.api_url, follow_redirects=False, timeout=60, **kw)


@contextlib.contextmanager
def signed_in(platform):
    """An HTTP client with a Studio session, and that session's CSRF token."""
    with studio(platform) as client:
        r = client.post("/sign-in", data={"token": platform.token})
        assert r.status_code == 303 and r.headers["location"] == "/"
        page = client.get("/")
        csrf = re.search(r'name="_csrf" value="([0-9a-f]{64})"', page.text).group(1)
        yield client, csrf


def project_names(platform):
    with platform.client() as api:
        return {p["name"] for p in api.get("/v1/projects").json()}


def test_pages_refuse_without_a_session(platform):
    with studio(platform) as client:
        for path in ["/", f"/projects/{'a' * 20}", f"/projects/{'a' * 20}/delete"]:
            r = client.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/sign-in", path
        name = f"nosession-{uuid.uuid4().hex[:6]}"
        r = client.post("/projects", data={"name": name, "_csrf": "0" * 64})
        assert r.status_code == 303 and r.headers["location"] == "/sign-in"
        # A forged cookie is no session either.
        r = client.get("/", headers={"Cookie": "supa_studio=" + "f" * 64})
        assert r.status_code == 303
    assert name not in project_names(platform)


def test_sign_in_sets_a_strict_http_only_cookie(platform):
    with studio(platform) as client:
        r = client.post("/sign-in", data={"token": "not-the-token"})
        assert r.status_code == 401 and "not the admin token" in r.text
        assert "set-cookie" not in r.headers
        r = client.post("/sign-in", data={"token": platform.token})
        cookie = r.headers["set-cookie"]
        assert re.match(r"supa_studio=[0-9a-f]{64}; ", cookie)
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"]:
            assert flag in cookie
        assert "Secure" not in cookie  # plain HTTP here: a Secure cookie would never come back
        r = client.post("/sign-in", data={"token": platform.token}, headers={"X-Forwarded-Proto": "https"})
        assert r.headers["set-cookie"].endswith("; Secure")
        # Sign-in from another site's form is refused.
        r = client.post("/sign-in", data={"token": platform.token}, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "set-cookie" not in r.headers


def test_every_page_carries_a_strict_policy(platform):
    with signed_in(platform) as (client, _):
        for path in ["/", "/sign-in"]:
            r = client.get(path)
            csp = r.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "'unsafe-inline'" not in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["cache-control"] == "no-store"
        # No inline script or style anywhere: the policy would block it.
        page = client.get("/").text
        assert not re.search(r"<script(?![^>]*\bsrc=)", page) and "<style" not in page and " style=" not in page
        assert client.get("/assets/studio.js").headers["content-type"].startswith("text/javascript")


def test_changes_without_the_right_csrf_token_or_from_another_origin_are_refused(platform):
    name = f"csrf-{uuid.uuid4().hex[:6]}"
    with signed_in(platform) as (client, csrf):
        for data, headers in [
            ({"name": name}, {}),
            ({"name": name, "_csrf": "0" * 64}, {}),
            ({"name": name, "_csrf": csrf[:-1]}, {}),
            ({"name": name, "_csrf": csrf}, {"Origin": "https://evil.example"}),
        ]:
            r = client.post("/projects", data=data, headers=headers)
            assert r.status_code == 403, (data, headers, r.status_code)
        r = client.post("/sign-out", data={"_csrf": "0" * 64})
        assert r.status_code == 403
        assert client.get("/").status_code == 200  # still signed in
    assert name not in project_names(platform)


def test_names_and_keys_are_rendered_inert(platform):
    project = create_project(platform, XSS)
    with signed_in(platform) as (client, csrf):
        r = client.post(f"/projects/{project['ref']}/keys", data={"name": XSS[:60], "_csrf": csrf})
        assert r.status_code == 200
        for page in [client.get("/").text, r.text]:
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
            assert "<script>alert" not in page and "<img src=x" not in page


def test_table_names_and_row_values_are_rendered_inert(platform):
    table = "<script>alert(3)</script>"
    project = create_project(platform, f"xss-{uuid.uuid4().hex[:6]}", (
        f'create table public."{table}" (id int primary key, body text);'
        f'insert into public."{table}" values (1, $x${XSS}$x$);'
        f'grant select on public."{table}" to service_role;'))
    with signed_in(platform) as (client, _):
        listing = client.get(f"/projects/{project['ref']}/tables")
        rows = client.get(f"/projects/{project['ref']}/tables/public/{quote(table, safe='')}")
        assert listing.status_code == 200 and rows.status_code == 200, rows.text
        assert "&lt;script&gt;alert(3)&lt;/script&gt;" in listing.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rows.text  # the row's value, shown
        for page in [listing.text, rows.text]:
            assert "<script>alert" not in page and "<img src=x" not in page


def test_deleting_needs_the_ref_typed(platform):
    project = create_project(platform, f"keep-{uuid.uuid4().hex[:6]}")
    with signed_in(platform) as (client, csrf):
        r = client.post(f"/projects/{project['ref']}/delete", data={"_csrf": csrf, "confirm": "wrong"})
        assert r.status_code == 400 and "nothing was deleted" in r.text
        assert project["name"] in project_names(platform)
        r = client.post(f"/projects/{project['ref']}/delete", data={"_csrf": csrf, "confirm": project["ref"]})
        assert r.status_code == 303
    assert project["name"] not in project_names(platform)


def test_invite_mails_a_link_and_lists_the_user_unconfirmed(platform):
    project = create_project(platform, f"invite-{uuid.uuid4().hex[:6]}")
    email = f"guest-{uuid.uuid4().hex[:6]}@example.com"
    with signed_in(platform) as (client, csrf):
        r = client.post(f"/projects/{project['ref']}/auth/invite", data={"email": email})
        assert r.status_code == 403  # no CSRF token
        r = client.post(f"/projects/{project['ref']}/auth/invite", data={"email": email, "_csrf": csrf})
        assert r.status_code == 303, r.text
        page = client.get(f"/projects/{project['ref']}/auth").text
        assert email in page and "(unconfirmed)" in page
        # Inviting an address twice is fine until it is confirmed; a bad
        # address is the auth server's 400, shown on a page, not a crash.
        r = client.post(f"/projects/{project['ref']}/auth/invite", data={"email": "not-an-address", "_csrf": csrf})
        assert r.status_code == 400 and "email" in r.text.lower()
    with platform.client() as api:
        mails = api.get(f"/v1/projects/{project['ref']}/auth/outbox", params={"email": email}).json()
    assert [m["kind"] for m in mails] == ["invite"]
    assert "type=invite" in json.dumps(mails[0])


# --- in a browser -------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(b, platform):
    b.get(f"{platform.api_url}/sign-in")
    b.find_element(By.ID, "token").send_keys(platform.token, Keys.ENTER)
    wait(b, EC.title_contains("Projects"))


def secret_key(platform, ref):
    with platform.client() as api:
        keys = api.get(f"/v1/projects/{ref}/api-keys", params={"reveal": "true"}).json()
    return next(k["api_key"] for k in keys if k["type"] == "secret")


def shot(driver, name):
    path = SHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 1000


def wait(driver, condition, timeout=30):
    # A page being replaced can answer for nodes that just went away.
    return WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,)).until(condition)


def test_a_project_from_sign_in_to_sign_out_in_a_browser(platform, browser):
    b = browser
    b.get(f"{platform.api_url}/")
    assert b.current_url.endswith("/sign-in")
    shot(b, "01-sign-in")
    # The keyboard alone: the token field has focus, Enter submits.
    token = b.switch_to.active_element
    assert token.get_attribute("id") == "token"
    assert b.find_element(By.CSS_SELECTOR, "label[for=token]").text == "Admin token"
    token.send_keys(platform.token, Keys.ENTER)
    wait(b, EC.title_contains("Projects"))
    shot(b, "02-projects")

    # Create a project and watch its steps.
    name = f"browser-{uuid.uuid4().hex[:6]}"
    b.find_element(By.ID, "name").send_keys(name)
    b.find_element(By.CSS_SELECTOR, "form[action='/projects'] button[type=submit]").click()
    link = wait(b, EC.presence_of_element_located((By.ID, "open-project")))
    steps = [li.text for li in b.find_elements(By.CSS_SELECTOR, "#steps li")]
    assert steps[0].startswith("choosing a worker") and "issuing API keys…" in steps and len(steps) == 6
    shot(b, "03-project-created")
    link.click()
    wait(b, EC.title_contains(name))
    shot(b, "04-project-home")
    url = b.find_element(By.ID, "api-url").text
    publishable = b.find_element(By.ID, "publishable-key").text
    assert url.endswith("/project/" + url.rsplit("/", 1)[1]) and publishable.startswith("sb_publishable_")
    ref = url.rsplit("/", 1)[1]
    assert ref in b.find_element(By.CSS_SELECTOR, "pre code").text  # the supabase-py snippet

    # The key shown works with supabase-py.
    with platform.client() as api:
        r = api.post(f"/v1/projects/{ref}/database/query", json={"query": (
            "create table notes (id int primary key, body text); insert into notes values (1, 'hi');"
            "grant select on notes to anon;")})
        assert r.status_code == 201, r.text
    assert create_client(url, publishable).table("notes").select("body").execute().data == [{"body": "hi"}]

    # A named secret key: shown once, works, then revoked and refused.
    b.find_element(By.ID, "key-name").send_keys("ci")
    b.find_element(By.CSS_SELECTOR, "form[action$='/keys'] button[type=submit]").click()
    row = wait(b, EC.presence_of_element_located((By.CSS_SELECTOR, "tr[data-key-name=ci]")))
    secret = row.find_element(By.CSS_SELECTOR, "code").text
    assert secret.startswith("sb_secret_")
    shot(b, "05-secret-key-created")
    rest = httpx.get(f"{url}/rest/v1/notes", headers={"apikey": secret})
    assert rest.status_code == 200 and rest.json() == [{"id": 1, "body": "hi"}]
    row.find_element(By.CSS_SELECTOR, "button.danger").click()
    wait(b, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "p.ok"), "revoked"))
    assert not b.find_elements(By.CSS_SELECTOR, "tr[data-key-name=ci]")
    rest = httpx.get(f"{url}/rest/v1/notes", headers={"apikey": secret})
    assert rest.status_code == 401, rest.text

    # The table editor: create a table, insert, edit, filter, follow a
    # foreign key, delete.
    b.find_element(By.LINK_TEXT, "Table editor").click()
    wait(b, EC.title_contains("Tables"))
    b.find_element(By.ID, "table-name").send_keys("tasks")
    columns = b.find_element(By.ID, "columns")
    columns.clear()
    columns.send_keys("title text not null\ndone boolean default false")
    b.find_element(By.CSS_SELECTOR, "#new-table + form button[type=submit]").click()
    wait(b, EC.title_contains("tasks"))
    for title in ["write docs", "ship it"]:
        b.find_element(By.ID, "i-title").send_keys(title)
        insert = b.find_element(By.CSS_SELECTOR, "form[action$='/insert'] button")
        insert.click()
        wait(b, EC.staleness_of(insert))
        wait(b, EC.text_to_be_present_in_element((By.ID, "rows"), title))
    shot(b, "06-table-editor")
    service = create_client(url, secret_key(platform, ref))
    tasks = service.table("tasks").select("id,title,done").order("id").execute().data
    assert [(t["title"], t["done"]) for t in tasks] == [("write docs", False), ("ship it", False)]
    # RLS is on and nothing is granted by policy: the publishable key sees none.
    assert create_client(url, publishable).table("tasks").select("*").execute().data == []
    first = tasks[0]["id"]
    b.find_element(By.CSS_SELECTOR, f"a[aria-label='Edit row {first}']").click()
    done = wait(b, EC.presence_of_element_located((By.ID, "e-done")))
    done.clear()
    done.send_keys("true")
    b.find_element(By.CSS_SELECTOR, "form[action$='/update'] button").click()
    wait(b, EC.staleness_of(done))
    assert service.table("tasks").select("done").eq("id", first).execute().data == [{"done": True}]
    Select(b.find_element(By.ID, "f-column")).select_by_value("title")
    Select(b.find_element(By.ID, "f-op")).select_by_value("ilike")
    b.find_element(By.ID, "f-value").send_keys("ship*")
    b.find_element(By.CSS_SELECTOR, "form[aria-label='Filter rows'] button").click()
    wait(b, EC.text_to_be_present_in_element((By.ID, "row-count"), "1 rows"))
    assert "write docs" not in b.find_element(By.ID, "rows").text
    with platform.client() as api:
        r = api.post(f"/v1/projects/{ref}/database/query", json={"query": (
            "create table steps (id int primary key, task_id bigint references tasks (id), what text);"
            f"insert into steps values (1, {first}, 'outline');")})
        assert r.status_code == 201, r.text
    b.get(f"{platform.api_url}/projects/{ref}/tables/public/steps")
    link = b.find_element(By.LINK_TEXT, str(first))
    link.click()
    wait(b, EC.staleness_of(link))
    wait(b, EC.text_to_be_present_in_element((By.ID, "row-count"), "1 rows"))
    assert "write docs" in b.find_element(By.ID, "rows").text
    b.get(f"{platform.api_url}/projects/{ref}/tables/public/steps")
    b.find_element(By.CSS_SELECTOR, "button[aria-label='Delete row 1']").click()
    wait(b, EC.text_to_be_present_in_element((By.ID, "row-count"), "0 rows"))
    b.find_element(By.LINK_TEXT, "Overview").click()

    # The SQL editor: an error shows where it points, a query shows its rows;
    # both go to the history, and a snippet comes back by name.
    b.find_element(By.LINK_TEXT, "SQL editor").click()
    wait(b, EC.title_contains("SQL"))
    editor = b.find_element(By.ID, "query")
    editor.send_keys("select 1;\nselect bodyy from notes")
    b.find_element(By.CSS_SELECTOR, "button[value=run]").click()
    error = wait(b, EC.presence_of_element_located((By.ID, "sql-error")))
    assert 'column "bodyy" does not exist' in error.text and "At line 2, column 8" in error.text
    assert error.find_element(By.CSS_SELECTOR, "pre.pointer").text.splitlines()[1] == " " * 7 + "^"
    shot(b, "07-sql-error")
    editor = b.find_element(By.ID, "query")
    editor.clear()
    editor.send_keys(f"select id, body, '{XSS}' as x from notes")
    b.find_element(By.CSS_SELECTOR, "button[value=run]").click()
    grid = wait(b, EC.presence_of_element_located((By.ID, "result")))
    assert [th.text for th in grid.find_elements(By.CSS_SELECTOR, "th")] == ["id", "body", "x"]
    assert [td.text for td in grid.find_elements(By.CSS_SELECTOR, "td")] == ["1", "hi", XSS]
    assert not b.find_elements(By.CSS_SELECTOR, "#result script, #result img")
    history = [li.text for li in b.find_elements(By.CSS_SELECTOR, "ol.history li")]
    assert history[0].endswith("1 rows") and history[1].endswith("failed")
    b.find_element(By.ID, "save-as").send_keys("greeting")
    b.find_element(By.CSS_SELECTOR, "button[value=save]").click()
    wait(b, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "p.ok"), "Saved as snippet greeting"))
    b.find_element(By.ID, "query").clear()
    b.find_element(By.LINK_TEXT, "greeting").click()
    assert b.find_element(By.ID, "query").get_attribute("value").startswith("select id, body")
    shot(b, "08-sql-editor")
    b.find_element(By.LINK_TEXT, "Overview").click()

    # Delete, confirming with the ref.
    b.find_element(By.LINK_TEXT, "Delete project").click()
    wait(b, EC.title_contains("Delete project"))
    shot(b, "09-delete-confirm")
    b.find_element(By.ID, "confirm").send_keys(ref)
    b.find_element(By.CSS_SELECTOR, "form button.danger").click()
    wait(b, EC.title_contains("Projects"))
    assert name not in b.page_source

    # Sign out: the session is gone.
    b.find_element(By.CSS_SELECTOR, "form[action='/sign-out'] button").click()
    wait(b, EC.title_contains("Sign in"))
    b.get(f"{platform.api_url}/")
    assert b.current_url.endswith("/sign-in")


def test_every_control_has_a_label(platform, browser):
    b = browser
    sign_in(b, platform)
    project = create_project(platform, f"labels-{uuid.uuid4().hex[:6]}")
    for path in ["/", "/workers", f"/projects/{project['ref']}", f"/projects/{project['ref']}/sql",
                 f"/projects/{project['ref']}/tables", f"/projects/{project['ref']}/auth",
                 f"/projects/{project['ref']}/functions", f"/projects/{project['ref']}/settings",
                 f"/projects/{project['ref']}/realtime", f"/projects/{project['ref']}/storage",
                 f"/projects/{project['ref']}/observability", f"/projects/{project['ref']}/delete"]:
        b.get(platform.api_url + path)
        for control in b.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), select, textarea, button"):
            control_id = control.get_attribute("id")
            labelled = (control.get_attribute("aria-label") or control.text.strip()
                        or (control_id and b.find_elements(By.CSS_SELECTOR, f"label[for='{control_id}']")))
            assert labelled, f"{path}: {control.get_attribute('outerHTML')}"


# Every visible text node's colour against the first opaque background
# behind it, as WCAG 2 computes contrast: 4.5:1, or 3:1 for large text.
CONTRAST_JS = """
function lum(c) {
  const [r, g, b] = c.match(/[0-9.]+/g).slice(0, 3).map(Number).map(v => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
function alpha(c) { const p = c.match(/[0-9.]+/g); return p.length > 3 ? Number(p[3]) : 1; }
function background(el) {
  for (; el; el = el.parentElement) {
    const bg = getComputedStyle(el).backgroundColor;
    if (alpha(bg) > 0) return bg;
  }
  return 'rgb(255, 255, 255)';
}
const failures = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode, el = node.parentElement;
  if (!node.textContent.trim() || !el.getClientRects().length) continue;
  if (el.closest('.visually-hidden, svg')) continue;
  const style = getComputedStyle(el);
  const fg = style.color, bg = background(el);
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  const ratio = (a + 0.05) / (b + 0.05);
  const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
  const needed = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
  if (ratio < needed) failures.push(`${node.textContent.trim().slice(0, 40)}: ${fg} on ${bg} = ${ratio.toFixed(2)}`);
}
return failures;
"""


def test_text_contrast_meets_wcag_aa_and_the_keyboard_reaches_every_control(platform, browser):
    b = browser
    sign_in(b, platform)
    project = create_project(platform, f"a11y-{uuid.uuid4().hex[:6]}", "create table t (id int primary key);")
    ref = project["ref"]
    for path in ["/", "/workers", f"/projects/{ref}", f"/projects/{ref}/tables", f"/projects/{ref}/tables/public/t",
                 f"/projects/{ref}/sql", f"/projects/{ref}/auth", f"/projects/{ref}/storage",
                 f"/projects/{ref}/realtime", f"/projects/{ref}/functions", f"/projects/{ref}/observability",
                 f"/projects/{ref}/settings", f"/projects/{ref}/delete"]:
        b.get(platform.api_url + path)
        assert b.execute_script(CONTRAST_JS) == [], path

    # Tab alone walks the project page's controls in order, each visibly
    # focused; none is skipped.
    b.get(f"{platform.api_url}/projects/{ref}")
    controls = [e for e in b.find_elements(By.CSS_SELECTOR, "a[href], button, input:not([type=hidden]), select, textarea")
                if e.is_displayed()]
    reached = []
    for _ in controls:
        ActionChains(b).send_keys(Keys.TAB).perform()
        active = b.switch_to.active_element
        outline = b.execute_script("return getComputedStyle(arguments[0]).outlineStyle", active)
        assert outline != "none", active.get_attribute("outerHTML")
        reached.append(active)
    # In document order, one Tab each: nothing skipped, no trap.
    assert reached == controls, [c.get_attribute("outerHTML") for c in reached]


def test_auth_settings_functions_and_workers_pages(platform, browser):
    b = browser
    sign_in(b, platform)
    project = create_project(platform, f"pages-{uuid.uuid4().hex[:6]}",
                             "create table items (id int primary key); insert into items values (1), (2), (3);"
                             "grant select on items to anon;")
    ref, url = project["ref"], project["url"]
    client = create_client(url, project["publishable_key"])

    # Auth: add a user who can then sign in; find them; delete them.
    b.get(f"{platform.api_url}/projects/{ref}/auth")
    email = f"ann-{uuid.uuid4().hex[:6]}@example.com"
    b.find_element(By.ID, "user-email").send_keys(email)
    b.find_element(By.ID, "user-password").send_keys("correct horse battery")
    b.find_element(By.CSS_SELECTOR, "form[action$='/auth/users'] button").click()
    wait(b, EC.text_to_be_present_in_element((By.ID, "user-list"), email))
    session = client.auth.sign_in_with_password({"email": email, "password": "correct horse battery"})
    assert session.user.email == email
    b.find_element(By.ID, "q").send_keys("nobody-like-this", Keys.ENTER)
    wait(b, EC.text_to_be_present_in_element((By.ID, "user-count"), "0 of 1 users"))
    b.find_element(By.ID, "q").clear()
    b.find_element(By.ID, "q").send_keys(email[:8], Keys.ENTER)
    wait(b, EC.text_to_be_present_in_element((By.ID, "user-count"), "1 of 1 users"))
    shot(b, "10-auth")
    # Sign-ups off, through the settings form: the client is refused.
    b.find_element(By.ID, "s-disable_signup").click()
    save = b.find_element(By.CSS_SELECTOR, "form[action$='/auth/settings'] button")
    save.click()
    wait(b, EC.staleness_of(save))
    assert b.find_element(By.ID, "s-disable_signup").is_selected()
    with platform.client() as api:
        assert api.get(f"/v1/projects/{ref}/config/auth").json()["disable_signup"] is True
    b.find_element(By.CSS_SELECTOR, f"button[aria-label='Delete user {email}']").click()
    wait(b, EC.text_to_be_present_in_element((By.ID, "user-count"), "0 of 0 users"))

    # Settings: the data plane's row cap, and secrets by digest only.
    with platform.client() as api:
        r = api.post(f"/v1/projects/{ref}/secrets", json=[{"name": "STRIPE_KEY", "value": "sk_test_123"}])
        assert r.status_code in (200, 201), r.text
    b.get(f"{platform.api_url}/projects/{ref}/settings")
    rows = b.find_element(By.ID, "max_rows")
    rows.clear()
    rows.send_keys("2")
    save = b.find_element(By.CSS_SELECTOR, "form[action$='/settings'] button")
    save.click()
    wait(b, EC.staleness_of(save))
    assert b.find_element(By.ID, "max_rows").get_attribute("value") == "2"
    secrets_text = b.find_element(By.ID, "secret-list").text
    assert "STRIPE_KEY" in secrets_text and hashlib.sha256(b"sk_test_123").hexdigest() in secrets_text
    assert "sk_test_123" not in b.page_source
    shot(b, "11-settings")
    deadline = time.monotonic() + 10
    while len(client.table("items").select("id").execute().data) != 2:
        assert time.monotonic() < deadline, "max_rows did not reach the data plane"

    # Functions: none deployed yet, said plainly.
    b.get(f"{platform.api_url}/projects/{ref}/functions")
    assert "No functions deployed" in b.find_element(By.ID, "main").text

    # Workers: the platform's clusters.
    b.find_element(By.LINK_TEXT, "Workers").click()
    wait(b, EC.title_contains("Workers"))
    assert "local" in b.find_element(By.ID, "worker-list").text
    shot(b, "12-workers")


def test_storage_buckets_folders_upload_download_and_urls(platform, browser, tmp_path):
    b = browser
    sign_in(b, platform)
    project = create_project(platform, f"files-{uuid.uuid4().hex[:6]}")
    ref = project["ref"]
    b.get(f"{platform.api_url}/projects/{ref}/storage")
    b.find_element(By.ID, "bucket-name").send_keys("docs")
    b.find_element(By.ID, "bucket-public").click()
    b.find_element(By.CSS_SELECTOR, "form[action$='/buckets'] button").click()
    wait(b, EC.presence_of_element_located((By.ID, "object-list")))

    # Upload through the form (the script sends it with a progress bar).
    body = uuid.uuid4().bytes * 20_000
    local = tmp_path / "report 1.bin"
    local.write_bytes(body)
    b.find_element(By.ID, "file").send_keys(str(local))
    b.find_element(By.CSS_SELECTOR, "form[data-upload] button").click()
    wait(b, EC.text_to_be_present_in_element((By.ID, "object-list"), "report 1.bin"))
    assert b.find_element(By.ID, "upload-progress").get_attribute("value") in ("0", "100")
    service = create_client(project["url"], project["secret_key"])
    assert service.storage.from_("docs").download("report 1.bin") == body

    # A folder made by a client shows as one, and opens.
    service.storage.from_("docs").upload("reports/q1.txt", b"quarter one", {"content-type": "text/plain"})
    b.get(f"{platform.api_url}/projects/{ref}/storage?bucket=docs")
    b.find_element(By.LINK_TEXT, "reports/").click()
    wait(b, EC.text_to_be_present_in_element((By.ID, "object-list"), "q1.txt"))
    shot(b, "13-storage")

    # Download through Studio, with the browser's session.
    cookie = {"supa_studio": b.get_cookie("supa_studio")["value"]}
    href = b.find_element(By.CSS_SELECTOR, "a[aria-label='Download q1.txt']").get_attribute("href")
    r = httpx.get(href, cookies=cookie)
    assert r.status_code == 200 and r.content == b"quarter one"
    assert r.headers["content-disposition"] == "attachment; filename*=UTF-8''q1.txt"
    assert httpx.get(href).status_code == 303  # no session, no file

    # Public and signed URLs work without any key.
    public = b.find_element(By.CSS_SELECTOR, "a[aria-label='Public URL of q1.txt']").get_attribute("href")
    assert httpx.get(public).content == b"quarter one"
    b.find_element(By.CSS_SELECTOR, "button[aria-label='Signed URL of q1.txt']").click()
    signed = wait(b, EC.presence_of_element_located((By.ID, "signed-url"))).text
    assert "token=" in signed and httpx.get(signed).content == b"quarter one"


def test_the_realtime_inspector_shows_live_broadcasts(platform, browser):
    b = browser
    sign_in(b, platform)
    project = create_project(platform, f"live-{uuid.uuid4().hex[:6]}")
    b.get(f"{platform.api_url}/projects/{project['ref']}/realtime?channel=news")
    wait(b, EC.text_to_be_present_in_element((By.ID, "rt-status"), "Listening on news"))
    headers = {"apikey": project["secret_key"], "Authorization": f"Bearer {project['secret_key']}"}
    r = httpx.post(f"{project['url']}/realtime/v1/api/broadcast", headers=headers, json={"messages": [
        {"topic": "news", "event": "headline", "payload": {"text": XSS}},
        {"topic": "elsewhere", "event": "other", "payload": {"n": 2}}]})
    assert r.status_code == 202, r.text
    wait(b, EC.text_to_be_present_in_element((By.ID, "rt-events"), "headline"))
    events = b.find_element(By.ID, "rt-events")
    assert "elsewhere" not in events.text and "alert(1)" in events.text
    assert not events.find_elements(By.CSS_SELECTOR, "script, img")
    shot(b, "14-realtime")


def test_pause_resume_and_the_gateways_charts(platform, browser):
    b = browser
    sign_in(b, platform)
    name = f"pause-{uuid.uuid4().hex[:6]}"
    project = create_project(platform, name, "create table t (id int primary key); insert into t values (1);"
                                             "grant select on t to anon;")
    ref = project["ref"]
    rest = httpx.Client(base_url=project["url"], headers={"apikey": project["publishable_key"]}, timeout=30)
    for _ in range(5):
        assert rest.get("/rest/v1/t").json() == [{"id": 1}]

    # Pause from the projects list: the gateway answers 503, the worker
    # holds no session of the database and takes no new one.
    b.get(f"{platform.api_url}/")
    b.find_element(By.CSS_SELECTOR, f"button[aria-label='Pause project {name}']").click()
    resume = wait(b, EC.presence_of_element_located(
        (By.CSS_SELECTOR, f"button[aria-label='Resume project {name}']")))
    shot(b, "14-paused")
    with platform.client() as api:
        assert api.get(f"/v1/projects/{ref}").json()["status"] == "INACTIVE"
        other = create_project(platform, f"peek-{uuid.uuid4().hex[:6]}")
        peek = api.post(f"/v1/projects/{other['ref']}/database/query", json={"query": (
            f"select d.datallowconn, (select count(*) from pg_stat_activity a where a.datname = d.datname) as sessions"
            f" from pg_database d where d.datname like '%{ref}%'")}).json()
        assert peek == [{"datallowconn": False, "sessions": 0}], peek
        # Pausing twice is a conflict, said plainly.
        again = api.post(f"/v1/projects/{ref}/pause")
        assert again.status_code == 409 and "INACTIVE" in again.text
    r = rest.get("/rest/v1/t")
    assert r.status_code == 503 and r.json()["message"]

    # Resume: the same row is served again.
    resume.click()
    wait(b, EC.presence_of_element_located((By.CSS_SELECTOR, f"button[aria-label='Pause project {name}']")))
    assert rest.get("/rest/v1/t").json() == [{"id": 1}]

    # The charts: 7 answered, 1 of them the paused project's 503. This
    # platform has Redis, where the gateway hands its counts every 10 s.
    deadline = time.monotonic() + 30
    while True:
        b.get(f"{platform.api_url}/projects/{ref}/observability")
        totals = b.find_element(By.ID, "usage-totals").text.split("\n")
        if totals[1] == "7" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert totals[:4] == ["Requests", "7", "Server errors", "1"], totals
    label = b.find_element(By.ID, "svg-errors").get_attribute("aria-label")
    # 1 of 7 in one minute is 14.3 %; more if the minute turned between.
    highest = float(re.match(r"Error rate \(5xx\): highest ([0-9.]+) %", label).group(1))
    assert highest >= 14.3, label
    assert b.find_elements(By.CSS_SELECTOR, "#svg-rps rect")
    shot(b, "15-observability")
