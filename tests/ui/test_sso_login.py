"""Signing in to a team server's UI through single sign-on, in Chromium, against a real provider."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from server.test_oidc import Provider, oidc_table
from server.test_oidc import provider as provider  # the provider process, shared by the session


def test_single_sign_on_brings_the_browser_back_signed_in(
    page: Any, ui_server_factory: Any, provider: Provider, console: Any
) -> None:
    server = ui_server_factory(local=False, oidc=oidc_table(provider))
    with server.client() as admin:
        admin.post("/api/v1/workspaces", json={"name": "vision"}).raise_for_status()
    provider.user("alice", preferred_username="alice", groups=["ml-team"])
    console.allow("status of 401")  # the first look at /ui/me, before signing in
    console.allow(r"ERR_NAME_NOT_RESOLVED \(at https://cdn\.jsdelivr\.net/")  # the provider's page's styles
    console.allow(f"404 .*at {provider.url}/favicon.ico")  # and its missing icon

    page.goto(server.url + "/experiments")
    page.locator("[data-testid=sso]").click()
    page.locator("input[name=sub]").fill("alice")
    page.locator("form [type=submit]").first.click()

    page.wait_for_url(server.url + "/")
    expect(page.locator("[data-testid=who] .user")).to_have_text("alice")
    expect(page.locator("[data-testid=role]")).to_have_text("editor")
    page.locator("main[data-page=experiments][data-ready=true]").wait_for()

    page.get_by_role("button", name="Sign out").click()
    page.locator("main[data-page=login]").wait_for()
    assert page.request.get(server.url + "/api/v1/ui/me").status == 401
