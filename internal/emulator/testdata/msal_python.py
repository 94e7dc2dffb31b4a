"""MSAL for Python (Debian's python3-msal) against the mailoauth emulator: every flow MSAL supports,
then Python's imaplib and smtplib with the tokens (XOAUTH2). msal_python_test.go runs it with
/usr/bin/python3 and checks what it prints: one JSON object, a result per flow. Tokens are printed for
the test to verify; nothing else is (MSAL's error dicts carry codes and texts, never a secret).

The environment names the emulator: AUTHORITY (https://host:port/TENANT), REQUESTS_CA_BUNDLE (the
emulator's CA, which requests, under MSAL, trusts), client ids and credentials, and the mail servers.
"""
import http.server
import imaplib
import json
import os
import smtplib
import ssl
import sys
import threading
import urllib.parse

import msal
import requests

env = os.environ
results = {}

# --- docs/emulator-ci.md: python-apps ---
authority = env["AUTHORITY"]  # https://emulator:8443/contoso: the emulator's identity platform
daemon = msal.ConfidentialClientApplication(
    env["DAEMON_ID"],
    client_credential=env["DAEMON_SECRET"],
    authority=authority,
    instance_discovery=False,  # no call to login.microsoftonline.com to validate the authority
)
desktop = msal.PublicClientApplication(
    env["DESKTOP_ID"], authority=authority, instance_discovery=False
)
# --- end ---


# --- docs/emulator-ci.md: python-port ---
class KeepPort(requests.Session):
    """MSAL for Python (1.21 at least) drops the authority's port from the one URL it builds itself,
    /common/userrealm/, asked before a username/password sign-in: put it back. Not needed when the
    emulator listens on 443."""

    def request(self, method, url, *args, **kwargs):
        u, a = urllib.parse.urlsplit(url), urllib.parse.urlsplit(authority)
        if u.hostname == a.hostname and u.port is None:
            url = u._replace(netloc=a.netloc).geturl()
        return super().request(method, url, *args, **kwargs)


ropc = msal.PublicClientApplication(
    env["DESKTOP_ID"], authority=authority, instance_discovery=False, http_client=KeepPort())
# --- end ---


def record(name, result):
    """Keeps what the test checks of an MSAL result: the token, or Entra's error code and text."""
    if result and "access_token" in result:
        results[name] = {"ok": True, "access_token": result["access_token"],
                         "source": result.get("token_source", "")}
    else:
        result = result or {}
        results[name] = {"ok": False, "error": result.get("error"),
                         "error_description": result.get("error_description"),
                         "error_codes": result.get("error_codes")}
    return results[name]


# Client credentials with the secret, then with the certificate.
exchange_app = ["https://outlook.office365.com/.default"]
record("client_secret", daemon.acquire_token_for_client(scopes=exchange_app))
with open(env["CERT_PEM"]) as f:
    pem = f.read()
cert_app = msal.ConfidentialClientApplication(
    env["DAEMON_ID"],
    client_credential={"private_key": pem, "thumbprint": env["CERT_THUMBPRINT"]},
    authority=authority, instance_discovery=False)
record("client_certificate", cert_app.acquire_token_for_client(scopes=exchange_app))

imap_scopes = ["https://outlook.office.com/IMAP.AccessAsUser.All"]
smtp_scopes = ["https://outlook.office.com/SMTP.Send"]

# Username and password (ROPC): MSAL first asks /common/userrealm/ whether the domain is federated.
record("password", ropc.acquire_token_by_username_password(
    env["ROPC_USER"], env["ROPC_PASSWORD"], scopes=imap_scopes))

# Device code: the emulator runs with --auto-approve, so the user has signed in by the first poll.
flow = desktop.initiate_device_flow(scopes=smtp_scopes)
if "user_code" not in flow:
    record("device_code", flow)
else:
    record("device_code", desktop.acquire_token_by_device_flow(flow))


# Authorization code with PKCE: MSAL makes the authorization URL; the emulator (auto-approving) sends
# the browser's redirect to the loopback redirect URI, where this listener takes it, as a desktop
# app's would.
class Callback(http.server.BaseHTTPRequestHandler):
    got = {}
    done = threading.Event()

    def do_GET(self):
        Callback.got = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"signed in")
        Callback.done.set()

    def log_message(self, *args):
        pass


listener = http.server.HTTPServer(("127.0.0.1", 0), Callback)
threading.Thread(target=listener.serve_forever, daemon=True).start()
redirect = "http://localhost:%d" % listener.server_port
flow = desktop.initiate_auth_code_flow(imap_scopes, redirect_uri=redirect)  # PKCE S256 and state
page = requests.get(flow["auth_uri"], allow_redirects=False, timeout=30)
if page.status_code in (302, 303):
    auth_response = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.headers["Location"]).query))
else:
    Callback.done.wait(30)
    auth_response = Callback.got
listener.shutdown()
record("auth_code", desktop.acquire_token_by_auth_code_flow(flow, auth_response))

# Silent: the emulator's access tokens live less than MSAL's five-minute margin, so MSAL treats the
# cached one as expired and redeems the refresh token.
accounts = desktop.get_accounts(username=env["AUTO_USER"])
record("silent", desktop.acquire_token_silent(imap_scopes, account=accounts[0] if accounts else None))


# --- docs/emulator-ci.md: python-mail ---
def xoauth2(user, token):
    return "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)


tls = ssl.create_default_context(cafile=env["REQUESTS_CA_BUNDLE"])


def imap_check(user, token):
    with imaplib.IMAP4_SSL(env["MAIL_HOST"], int(env["IMAP_PORT"]), ssl_context=tls) as imap:
        imap.authenticate("XOAUTH2", lambda _: xoauth2(user, token).encode())
        status, data = imap.select("INBOX")
        return status, int(data[0])


def smtp_send(user, token, to, message):
    with smtplib.SMTP(env["MAIL_HOST"], int(env["SMTP_PORT"])) as smtp:
        smtp.starttls(context=tls)
        smtp.ehlo()
        smtp.auth("XOAUTH2", lambda challenge=None: xoauth2(user, token))  # smtplib base64s it
        smtp.sendmail(user, [to], message)
# --- end ---


def mail(name, f):
    try:
        results[name] = {"ok": True, "result": f()}
    except Exception as e:  # imaplib and smtplib errors carry the server's reply, never the token
        results[name] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}


def token(name):
    return results[name].get("access_token", "")


mail("imap_app", lambda: imap_check(env["AUTO_USER"], token("client_secret")))
mail("imap_password", lambda: imap_check(env["ROPC_USER"], token("password")))
mail("imap_silent", lambda: imap_check(env["AUTO_USER"], token("silent")))
mail("smtp_device", lambda: smtp_send(env["AUTO_USER"], token("device_code"), env["ROPC_USER"],
                                      "From: %s\r\nTo: %s\r\nSubject: from MSAL for Python\r\n\r\nHello.\r\n"
                                      % (env["AUTO_USER"], env["ROPC_USER"])))
json.dump(results, sys.stdout)
