#!/usr/bin/env python3
"""End-to-end test of a Cairn tenant's OAuth 2.1 authorization server, driven by the official
MCP Python SDK (`mcp.client.auth.OAuthClientProvider`) with a scripted, headless "browser".

Scenarios: discovery (preflight, for clear messages), keep-alive after a 401, DCR, refresh-token
rotation, and a Client ID Metadata Document (CIMD) served from this process. Run through scripts/oauth-e2e (boots Cairn).
"""

import argparse
import http.client
import json
import logging
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urljoin, urlparse

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

GRANT_TYPES = ["authorization_code", "refresh_token"]


class Failure(Exception):
    """An expectation of this test that the server did not meet."""


def expect(ok: object, message: str) -> None:
    if not ok:
        raise Failure(message)


class FormParser(HTMLParser):
    """Every <form> with its <input>s and <button>s; no other markup is relied on."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._inside = True
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get").lower(),
                               "inputs": [], "buttons": []})
        elif self._inside and tag in ("input", "button"):
            default_type = "text" if tag == "input" else "submit"
            self.forms[-1][tag + "s"].append({"type": a.get("type", default_type).lower(),
                                              "name": a.get("name", ""), "value": a.get("value", "")})

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


def only_form(page: httpx.Response, what: str) -> dict:
    expect(page.status_code == 200, f"{what}: expected 200 HTML, got {page.status_code}: {page.text[:400]}")
    parser = FormParser()
    parser.feed(page.text)
    parser.close()
    expect(len(parser.forms) == 1, f"{what}: expected exactly one <form>, found {len(parser.forms)}")
    form = parser.forms[0]
    expect(form["method"] == "post", f"{what}: the form's method is {form['method']!r}, not post")
    form["url"] = urljoin(str(page.url), form["action"])  # an empty action means the page itself
    form["hidden"] = {i["name"]: i["value"] for i in form["inputs"] if i["type"] == "hidden" and i["name"]}
    return form


class Browser:
    """The user agent of the authorization-code flow: logs the user in and allows consent."""

    def __init__(self, email: str, password: str, redirect_uri: str) -> None:
        self.email, self.password, self.redirect_uri = email, password, redirect_uri
        self.authorize_urls: list[str] = []
        self.result: AuthorizationCodeResult | None = None

    async def redirect_handler(self, url: str) -> None:
        self.authorize_urls.append(url)
        self.result = None
        # One client for the whole visit: its cookie jar carries the CSRF cookie of the login page.
        async with httpx.AsyncClient(follow_redirects=False, timeout=30) as web:
            page = await web.get(url)
            login = only_form(page, "login page")
            expect(web.cookies, "the login page set no cookie (the CSRF cookie is expected)")
            # A cookie jar (unlike a browser on loopback) never sends a Secure cookie over http.
            expect(url.startswith("https:") or not any(c.secure for c in web.cookies.jar), "Secure cookie over http")
            names = {i["name"] for i in login["inputs"]}
            expect({"email", "password"} <= names, f"login form lacks email/password inputs: {sorted(names)}")
            page = await web.post(login["url"], data=login["hidden"] | {"email": self.email, "password": self.password})
            consent = only_form(page, "consent page (after login)")
            expect({"name": "decision", "value": "allow", "type": "submit"} in consent["buttons"],
                   f"consent form has no decision=allow submit button: {consent['buttons']}")
            done = await web.post(consent["url"], data=consent["hidden"] | {"decision": "allow"})
        expect(done.status_code == 303, f"consent: expected 303, got {done.status_code}: {done.text[:400]}")
        location = done.headers.get("location", "")
        expect(location.split("?")[0] == self.redirect_uri, f"consent redirected to {location!r}, not the redirect_uri")
        query = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
        expect("error" not in query, f"authorization error: {query}")
        expect("code" in query and "iss" in query, f"redirect lacks code or iss (RFC 9207): {location}")
        # The SDK checks state and iss itself; hand both over untouched.
        self.result = AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query["iss"])

    async def callback_handler(self) -> AuthorizationCodeResult:
        expect(self.result is not None, "the browser produced no authorization response")
        return self.result


@dataclass
class MemoryStorage:
    """TokenStorage kept in memory: each scenario starts as a client that never met Cairn."""

    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self): return self.tokens
    async def set_tokens(self, tokens): self.tokens = tokens
    async def get_client_info(self): return self.client_info
    async def set_client_info(self, info): self.client_info = info


def posts_to(sent: list[httpx2.Request], url: str) -> list[httpx2.Request]:
    return [r for r in sent if r.method == "POST" and str(r.url) == url]


def callback_uri() -> str:  # nothing listens there: the scripted browser stops at the redirect
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/callback"


def client_metadata(redirect_uri: str, name: str) -> OAuthClientMetadata:
    # application_type is a field of the SDK's model (default "native"): explicit, as Cairn requires it.
    return OAuthClientMetadata(redirect_uris=[redirect_uri], grant_types=GRANT_TYPES, response_types=["code"],
                               token_endpoint_auth_method="none", client_name=name, application_type="native")


async def whoami_via_sdk(args, provider: OAuthClientProvider) -> list[httpx2.Request]:
    """One client run (list tools, call whoami); returns every request sent, OAuth ones included."""
    sent: list[httpx2.Request] = []

    async def record(request: httpx2.Request) -> None:
        sent.append(request)

    hooks, timeout = {"request": [record]}, httpx2.Timeout(30.0, read=120.0)
    async with httpx2.AsyncClient(auth=provider, timeout=timeout, event_hooks=hooks) as http:
        async with Client(streamable_http_client(args.mcp_url, http_client=http)) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            expect("whoami" in names, f"tools/list has no whoami: {names}")
            result = await client.call_tool("whoami", {})
            text = " ".join(getattr(c, "text", "") for c in result.content)
            expect(not result.is_error, f"whoami returned an error: {text}")
            expect(args.tenant in text, f"whoami does not mention tenant {args.tenant!r}: {text}")
    return sent


async def keepalive_after_401(args, state: dict) -> None:
    """Clients may send the body of their first (401) POST a moment after its headers, then reuse
    the connection for discovery: a server that closes it unread makes the SDK fail at random."""
    url, body = urlparse(args.mcp_url), b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.putrequest("POST", url.path)
        for name, value in [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                            ("Accept", "application/json, text/event-stream")]:
            conn.putheader(name, value)
        conn.endheaders()
        time.sleep(0.05)
        conn.send(body)
        conn.getresponse().read()
        conn.request("GET", urlparse(args.prm_url).path)  # the same connection, unless it said close
        conn.getresponse().read()
    except (OSError, http.client.HTTPException) as e:
        raise Failure(f"the server dropped the connection of a 401 whose body came late ({e!r}): "
                      "it must read (drain) the request body before answering 401") from e
    finally:
        conn.close()


async def discovery(args, state: dict) -> None:
    async with httpx.AsyncClient(timeout=30) as h:
        r = await h.post(args.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                         headers={"Accept": "application/json, text/event-stream"})
        challenge = r.headers.get("www-authenticate", "")
        expect(r.status_code == 401, f"tokenless MCP request: expected 401, got {r.status_code}")
        expect(f'resource_metadata="{args.prm_url}"' in challenge, f"WWW-Authenticate: {challenge!r}")
        prm, asm = await h.get(args.prm_url), await h.get(args.asm_url)
        expect(prm.status_code == asm.status_code == 200, f"metadata: {prm.status_code}, {asm.status_code}")
        prm, asm = prm.json(), asm.json()
        expect(prm.get("resource") == args.mcp_url and prm.get("authorization_servers") == [args.issuer],
               f"protected resource metadata: {prm}")
        expect(asm.get("issuer") == args.issuer, f"AS metadata issuer: {asm.get('issuer')}")
        expect(asm.get("client_id_metadata_document_supported") is True and "S256" in
               asm.get("code_challenge_methods_supported", []), "AS metadata: no CIMD support or no S256")


async def dcr(args, state: dict) -> None:
    redirect_uri = callback_uri()
    storage, browser = MemoryStorage(), Browser(args.email, args.password, redirect_uri)
    provider = OAuthClientProvider(args.mcp_url, client_metadata(redirect_uri, "Cairn OAuth e2e (DCR)"), storage,
                                   browser.redirect_handler, browser.callback_handler)
    sent = await whoami_via_sdk(args, provider)
    registrations = posts_to(sent, str(provider.context.oauth_metadata.registration_endpoint))
    expect(len(registrations) == 1, f"expected one DCR request, saw {len(registrations)}")
    expect(json.loads(registrations[0].content).get("application_type") == "native",
           "the SDK sent no application_type=native in DCR")
    expect(storage.client_info and storage.client_info.client_id, "no client_id from registration")
    expect(len(browser.authorize_urls) == 1, f"expected one login, saw {len(browser.authorize_urls)}")
    expect(storage.tokens and storage.tokens.refresh_token, "the token response carried no refresh_token")
    state["dcr"] = (provider, storage, browser)


async def refresh(args, state: dict) -> None:
    expect("dcr" in state, "skipped: needs the tokens of the DCR scenario")
    provider, storage, browser = state["dcr"]
    old = storage.tokens
    # The SDK refreshes before a request once it believes the access token has expired.
    provider.context.token_expiry_time = time.time() - 1
    sent = await whoami_via_sdk(args, provider)
    grants = [parse_qs(r.content.decode()).get("grant_type", [""])[0] for r in posts_to(sent, args.token_url)]
    expect(grants == ["refresh_token"], f"token requests during the run: {grants} (refresh refused?)")
    expect(len(browser.authorize_urls) == 1, "the SDK logged in again instead of refreshing")
    new = storage.tokens
    expect(new.access_token != old.access_token, "refresh returned the same access token")
    expect(new.refresh_token and new.refresh_token != old.refresh_token, "refresh token was not rotated")
    # Replay the used refresh token: a rotated-out token must be refused (OAuth 2.1 §4.3.1).
    r = httpx.post(args.token_url, timeout=30, data={"grant_type": "refresh_token", "client_id":
                                                     storage.client_info.client_id, "refresh_token": old.refresh_token})
    error = r.json().get("error") if r.headers.get("content-type", "").startswith("application/json") else None
    expect(r.status_code == 400 and error == "invalid_grant",
           f"replayed refresh token: expected 400 invalid_grant, got {r.status_code}: {r.text[:300]}")


async def cimd(args, state: dict) -> None:
    redirect_uri, hits = callback_uri(), []

    class Document(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the document at any path; the test checks which path was asked
            hits.append(self.path)
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:  # keep the test's output readable
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Document)
    url = f"http://127.0.0.1:{server.server_address[1]}/client.json"
    document = {"client_id": url, "client_name": "Cairn OAuth e2e (CIMD)", "redirect_uris": [redirect_uri],
                "grant_types": GRANT_TYPES, "response_types": ["code"], "token_endpoint_auth_method": "none",
                "application_type": "native"}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    storage, browser = MemoryStorage(), Browser(args.email, args.password, redirect_uri)
    provider = OAuthClientProvider(args.mcp_url, client_metadata(redirect_uri, "Cairn OAuth e2e (CIMD)"),
                                   storage, browser.redirect_handler, browser.callback_handler)
    # The SDK's constructor refuses a non-https client_metadata_url; nothing after it checks the
    # scheme again, so the loopback http URL (allowed by Cairn's test-only flag) is set here.
    provider.context.client_metadata_url = url
    try:
        sent = await whoami_via_sdk(args, provider)
    finally:
        server.shutdown()
        server.server_close()
    expect(storage.client_info.client_id == url, f"client_id used: {storage.client_info.client_id}")
    registration_endpoint = str(provider.context.oauth_metadata.registration_endpoint)
    expect(not posts_to(sent, registration_endpoint), "the SDK registered dynamically instead of using CIMD")
    expect("/client.json" in hits, f"Cairn never fetched the metadata document (requests: {hits})")
    expect(parse_qs(urlparse(browser.authorize_urls[0]).query).get("client_id") == [url],
           "authorization request did not name the metadata document URL")


def leaves(exc: BaseException) -> list[BaseException]:
    """The real errors inside the exception groups that anyio task groups wrap them in."""
    return [x for e in exc.exceptions for x in leaves(e)] if isinstance(exc, BaseExceptionGroup) else [exc]


async def run_all(args) -> int:
    state: dict = {}
    passed = failed = 0
    for name, scenario in [("discovery", discovery), ("keep-alive after 401", keepalive_after_401),
                           ("DCR", dcr), ("refresh", refresh), ("CIMD", cimd)]:
        try:
            with anyio.fail_after(args.timeout):
                await scenario(args, state)
            passed += 1
            print(f"PASS  {name}", flush=True)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then the next scenario runs
            failed += 1
            why = "; ".join(str(e) if isinstance(e, Failure) else "timed out" if isinstance(e, TimeoutError)
                            else f"{type(e).__name__}: {e}" for e in leaves(exc))
            print(f"FAIL  {name}: {why}", flush=True)
            if not all(isinstance(e, Failure) for e in leaves(exc)):
                traceback.print_exception(exc, file=sys.stderr)
    print(f"oauth-e2e: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True, help="Cairn's public URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--tenant", default="acme")
    p.add_argument("--email", default="alice@example.com")
    p.add_argument("--password", default="correct horse battery")
    p.add_argument("--timeout", type=float, default=90, help="seconds per scenario")
    args = p.parse_args()
    base, tenant_path = args.base_url.rstrip("/"), f"/t/{args.tenant}"
    args.issuer, args.mcp_url = base + tenant_path, f"{base}{tenant_path}/mcp"
    args.token_url = f"{args.issuer}/oauth/token"
    args.prm_url = f"{base}/.well-known/oauth-protected-resource{tenant_path}/mcp"
    args.asm_url = f"{base}/.well-known/oauth-authorization-server{tenant_path}"
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return anyio.run(run_all, args)


if __name__ == "__main__":
    sys.exit(main())
