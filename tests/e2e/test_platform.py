"""The deployment's success criteria, in a real browser: users log in through the identity
provider, their servers spawn with the configuration the chart injects, the getting-started
notebook runs (doctor all ok, a Trino result), Trino sees each user as themselves, the home
directory survives a server restart, and the hub exports the metrics the chart's dashboard and
alerts use."""

from __future__ import annotations

import re
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from chartlib import REPO, by_kind, one
from e2elib import E2E, Diagnostics

from carbon_sdk import CarbonError, trino
from carbon_sdk.dev.keycloak import USERS, email
from carbon_sdk.settings.carbon import configure

pytestmark = [pytest.mark.e2e, pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(900)]

NOTEBOOKS = REPO / "notebooks"
# Renamed from 00-quickstart.ipynb; either is run, the new name first.
NOTEBOOK_NAMES = ("00-getting-started.ipynb", "00-quickstart.ipynb")
SPAWN_TIMEOUT_MS = 180_000
RUN_TIMEOUT_S = 300.0
PERSISTED = "e2e-persisted.txt"
# Metrics of the dashboard and alerts that come from Kubernetes (kubelet, cAdvisor,
# kube-state-metrics, Prometheus itself), not from the hub; docs/operator.md lists them.
KUBERNETES_METRICS = {
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "kubelet_volume_stats_used_bytes",
    "kubelet_volume_stats_capacity_bytes",
    "kube_resourcequota",
    "up",
}
# Keep the notebook's every cell in the DOM, so the page can be read after "Run All".
# The notebook in the current tab (JupyterLab keeps other open notebooks hidden in the DOM).
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
LAB_SETTINGS = '{"windowingMode": "none"}'


def notebook() -> Path:
    """The getting-started notebook (its new name if it exists, else the old one)."""
    return next(NOTEBOOKS / n for n in NOTEBOOK_NAMES if (NOTEBOOKS / n).is_file())


def hub_name(e2e: E2E, user: str) -> str:
    """The hub's name for a realm user: the chart's username claim (email or username)."""
    return email(user) if e2e.username_claim == "email" else user


def _admin(e2e: E2E) -> dict[str, str]:
    return {"Authorization": f"token {e2e.hub['api_token']}"}


def user_model(e2e: E2E, name: str) -> dict[str, Any]:
    url = f"{e2e.hub['api_url']}/users/{urllib.parse.quote(name, safe='@')}"
    response = requests.get(url, headers=_admin(e2e), timeout=30)
    response.raise_for_status()
    model: dict[str, Any] = response.json()
    return model


def access_token(e2e: E2E, name: str) -> str:
    """The user's access token from the hub's auth_state (what the SDK reads in a server)."""
    return str(user_model(e2e, name)["auth_state"]["access_token"])


def prepare_home(e2e: E2E, name: str) -> Path:
    """The user's home with the notebook; JupyterLab's setting that keeps cells rendered (in
    the servers' ``JUPYTER_CONFIG_DIR``, where JupyterLab reads user settings)."""
    config_dir = Path(str(e2e.hub["users_dir"])).parent / "singleuser"
    settings = config_dir / "lab/user-settings/@jupyterlab/notebook-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "tracker.jupyterlab-settings").write_text(LAB_SETTINGS)
    home = Path(str(e2e.hub["users_dir"])) / name
    home.mkdir(parents=True, exist_ok=True)
    (home / notebook().name).write_bytes(notebook().read_bytes())
    return home


def log_in(page: Any, e2e: E2E, user: str) -> None:
    """The hub's login button, Keycloak's form; the hub then spawns the server."""
    page.goto(f"{e2e.hub['url']}hub/login")
    page.locator("a[href*='oauth_login']", has_text="Sign in with").click()
    page.fill("#username", user)
    page.fill("#password", str(e2e.keycloak[f"{user}_password"]))
    page.click("#kc-login")


def open_lab(page: Any, e2e: E2E, name: str, path: str) -> None:
    quoted = urllib.parse.quote(name, safe="@")
    page.goto(f"{e2e.hub['url']}user/{quoted}/lab/tree/{path}", timeout=SPAWN_TIMEOUT_MS)
    page.wait_for_selector(NOTEBOOK, timeout=SPAWN_TIMEOUT_MS)
    page.wait_for_selector(
        ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=SPAWN_TIMEOUT_MS
    )


_PROMPTS = f"""() => Array.from(document.querySelectorAll('{NOTEBOOK} .jp-CodeCell'))
  .map(c => (c.querySelector('.jp-InputPrompt')?.textContent || '').trim())"""


def _ran(prompts: list[str]) -> int:
    return sum(1 for p in prompts if p not in ("", "[ ]:"))


def wait_until_run(page: Any, started: int) -> list[str]:
    """Wait until at least ``started`` cells ran or run and none is queued or running; the
    prompts of the code cells."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        prompts: list[str] = page.evaluate(_PROMPTS)
        if _ran(prompts) >= started and not any("*" in p for p in prompts):
            return prompts
        assert time.monotonic() < deadline, f"cells still running: {prompts}"
        page.wait_for_timeout(500)


def run_all(page: Any) -> list[str]:
    """Run > Run All Cells (the notebook focused first; again if a dialog was in the way or the
    first click came before JupyterLab was ready to act on it); the prompts once it is over."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    retry = True
    for _ in range(4):
        dismiss_dialogs(page)
        try:
            page.locator(f"{NOTEBOOK} .jp-Cell").first.click(timeout=10_000)
            run_menu = page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$"))
            run_menu.click(timeout=10_000)
            run_all_item = page.locator(".lm-Menu-item", has_text=re.compile("^Run All Cells"))
            run_all_item.first.click(timeout=10_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")  # a menu left open
            continue
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _ran(page.evaluate(_PROMPTS)):
                prompts = wait_until_run(page, started=1)
                if _ran(prompts) == len(prompts) or not retry:
                    return prompts
                # the kernel's connection was replaced mid-run (a slow first kernel start):
                # the queued cells were dropped without an error; run them all once more
                print(f"Run All Cells stopped early without an error: {prompts}; again")
                retry = False
                break
            if page.locator(".jp-Dialog").count():
                break
            page.wait_for_timeout(500)
    raise AssertionError(f"Run All Cells started nothing: {page.evaluate(_PROMPTS)}")


def dismiss_dialogs(page: Any) -> None:
    """Accept any dialog JupyterLab opened (its text goes to the test's output: a failure shows
    it); e.g. a kernel dialog when the first start of a kernel was slow."""
    dialogs = page.locator(".jp-Dialog")
    for _ in range(dialogs.count()):
        print(f"JupyterLab dialog: {dialogs.first.inner_text()!r}")
        page.locator(".jp-Dialog .jp-mod-accept").first.click()
        page.wait_for_timeout(500)


def add_cell(page: Any, code: str) -> None:
    """Append a code cell with ``code`` and run it."""
    before = len(page.evaluate(_PROMPTS))
    dismiss_dialogs(page)
    page.locator(f"{NOTEBOOK} .jp-Cell").last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    wait_until_run(page, started=before + 1)


_DOCTOR = f"""() => {{
  const out = Array.from(document.querySelectorAll('{NOTEBOOK} .jp-OutputArea-output'))
    .find(o => o.textContent.includes('carbon-sdk doctor:'));
  if (!out) return null;
  return Array.from(out.querySelectorAll('tbody tr'))
    .map(r => Array.from(r.querySelectorAll('td')).map(td => td.textContent.trim()));
}}"""

_TRINO_TABLES = f"""() => Array.from(document.querySelectorAll('{NOTEBOOK} .jp-CodeCell'))
  .filter(c => (c.querySelector('.jp-InputArea')?.textContent || '').includes('trino.query'))
  .map(c => Array.from(c.querySelectorAll('.jp-OutputArea-output table.dataframe'))
    .map(t => t.innerText))"""


def stop_server(e2e: E2E, name: str) -> None:
    url = f"{e2e.hub['api_url']}/users/{urllib.parse.quote(name, safe='@')}/server"
    response = requests.delete(url, headers=_admin(e2e), timeout=60)
    assert response.status_code in (202, 204), response.text
    deadline = time.monotonic() + 60
    while user_model(e2e, name)["servers"]:
        assert time.monotonic() < deadline, f"{name}'s server did not stop"
        time.sleep(0.5)


def trino_as(e2e: E2E, token: str, sql: str, user: str | None = None) -> Any:
    """``sql`` on the stack's Trino with ``token`` (optionally asking to run as ``user``)."""
    settings = {k: v for k, v in e2e.trino.items() if k != "auth"}
    configure(trino={**settings, "auth": "jwt", "jwt": token, **({"user": user} if user else {})})
    return trino.query(sql)


@pytest.mark.parametrize("user", USERS)
def test_user_runs_the_getting_started_notebook(
    user: str, e2e: E2E, browser: Any, artifacts: Path, diagnostics: Diagnostics
) -> None:
    name = hub_name(e2e, user)
    home = prepare_home(e2e, name)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.on("console", lambda m: diagnostics.console.append(f"[{user}] {m.type}: {m.text}"))
    page.on("pageerror", lambda e: diagnostics.console.append(f"[{user}] pageerror: {e}"))
    try:
        log_in(page, e2e, user)
        page.wait_for_url(re.compile(r"/user/[^/]+/"), timeout=SPAWN_TIMEOUT_MS)
        open_lab(page, e2e, name, notebook().name)
        # the image's hook ran before the server, and found the configuration the chart injects
        log = (Path(str(e2e.hub["log_dir"])) / f"{name}.log").read_text()
        hook_line = log.index("carbon-sdk: config ")
        assert hook_line < log.index("ServerApp"), log[:2000]
        assert "found" in log[hook_line:].splitlines()[0], log[:2000]
        prompts = run_all(page)
        assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), prompts

        # the doctor: every configured service ok
        rows = page.evaluate(_DOCTOR)
        assert rows, "no doctor output in the notebook"
        statuses = {row[0]: row[1] for row in rows}
        assert {s: statuses.get(s) for s in ("postgres", "s3", "trino")} == dict.fromkeys(
            ("postgres", "s3", "trino"), "ok"
        ), rows
        assert set(statuses.values()) <= {"ok", "not configured"}, rows
        # the notebook's own Trino queries rendered a result
        trino_tables = page.evaluate(_TRINO_TABLES)
        if "getting-started" in notebook().name:
            assert any(trino_tables), trino_tables  # a cell may query and assert, not show

        # a query of this user's, and a file in the home directory
        marker = f"e2e-{uuid.uuid4().hex[:12]}"
        add_cell(
            page,
            "from pathlib import Path\n"
            "from carbon_sdk import trino\n"
            f"Path.home().joinpath({PERSISTED!r}).write_text({marker!r})\n"
            f"trino.query(\"select current_user as who, '{marker}' as marker\")",
        )
        result = page.locator(f"{NOTEBOOK} .jp-OutputArea-output table.dataframe").last.inner_text()
        assert name in result and marker in result, result
        page.screenshot(path=str(artifacts / f"{user}.png"), full_page=True)

        # Trino saw the notebook's query as this user (checked with the user's own token)
        token = access_token(e2e, name)
        assert trino_as(e2e, token, "select current_user as u")["u"][0] == name
        seen = trino_as(
            e2e,
            token,
            'select "user" from system.runtime.queries'
            f" where query like '%{marker}%' and query not like '%system.runtime.queries%'",
        )
        assert list(seen["user"]) == [name], seen

        # the home directory survives a restart of the server
        assert (home / PERSISTED).read_text() == marker
        stop_server(e2e, name)
        page.goto(f"{e2e.hub['url']}hub/spawn", timeout=SPAWN_TIMEOUT_MS)
        page.wait_for_url(re.compile(r"/user/[^/]+/"), timeout=SPAWN_TIMEOUT_MS)
        quoted = urllib.parse.quote(name, safe="@")
        contents = page.request.get(
            f"{e2e.hub['url']}user/{quoted}/api/contents/{PERSISTED}?content=1&type=file"
        )
        assert contents.ok, contents.text()
        assert contents.json()["content"] == marker
    finally:
        context.close()


def test_one_users_token_cannot_act_as_another(e2e: E2E) -> None:
    alice, bob = (hub_name(e2e, u) for u in USERS)
    bob_token = access_token(e2e, bob)
    assert bob_token != access_token(e2e, alice)
    with pytest.raises(CarbonError, match="cannot impersonate"):
        trino_as(e2e, bob_token, "select current_user as u", user=alice)


def _metric_names(text: str) -> set[str]:
    """Every metric name the PromQL in ``text`` selects (a name followed by ``{``)."""
    return set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", text))


def test_hub_exports_the_metrics_of_the_dashboard_and_alerts(e2e: E2E) -> None:
    dashboard = one(e2e.objects, "ConfigMap", "carbon-jupyterhub-dashboard")
    (rule,) = by_kind(e2e.objects, "PrometheusRule")
    used = _metric_names(str(dashboard["data"])) | _metric_names(yaml.safe_dump(rule["spec"]))
    hub_metrics = {m for m in used if m.startswith("jupyterhub_")}
    assert hub_metrics and used - hub_metrics == KUBERNETES_METRICS
    operator_guide = (REPO / "docs" / "operator.md").read_text()
    assert all(f"`{m}`" in operator_guide for m in KUBERNETES_METRICS)

    # Prometheus scrapes with the chart's metrics token (hub.authenticatePrometheus)
    response = requests.get(f"{e2e.hub['url']}hub/metrics", timeout=30)
    assert response.status_code == 403
    response = requests.get(
        f"{e2e.hub['url']}hub/metrics",
        headers={"Authorization": f"token {e2e.metrics_token}"},
        timeout=30,
    )
    response.raise_for_status()
    scraped = {
        line.split("{")[0].split(" ")[0]
        for line in response.text.splitlines()
        if line and not line.startswith("#")
    }
    assert hub_metrics <= scraped, sorted(hub_metrics - scraped)
