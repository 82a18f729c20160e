"""The UI of `t2g stack up` talks to its own server. Prefect's UI asks the server that
serves it which API to call (GET /ui-settings); a stack on any port but Prefect's default
4200 must answer with its own API URL, or the browser shows "Can't connect to Server API"
and an empty dashboard."""

from __future__ import annotations

import json
import urllib.request

from tests.support.flowrun import run_t2g
from tests.support.prefect_server import QUIET


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_ui_on_a_free_port_calls_that_servers_api(tmp_path):
    home = tmp_path / "stack"
    env = {**QUIET, "PREFECT_API_URL": None, "PREFECT_HOME": None, "PREFECT_UI_API_URL": None, "PREFECT_UI_URL": None}
    up = run_t2g(["stack", "up", "--home", str(home), "--port", "0", "--no-schedules"], tmp_path, env, timeout=400)
    try:
        assert up.returncode == 0, up.output
        state = json.loads((home / "stack.json").read_text())
        settings = _get_json(f"{state['ui_url']}/ui-settings")
        assert settings["api_url"] == state["api_url"], settings
        assert not state["api_url"].startswith("http://127.0.0.1:4200/")  # --port 0 picked another port
        with urllib.request.urlopen(state["ui_url"], timeout=10) as page:  # the UI itself is served
            assert page.status == 200 and "text/html" in page.headers["content-type"]
    finally:
        down = run_t2g(["stack", "down", "--home", str(home)], tmp_path, env, timeout=120)
        assert down.returncode == 0, down.output
