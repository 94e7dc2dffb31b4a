"""An independent client for the emulator's mail servers: Python's standard library only.

Usage: pyclient.py MODE. Everything else comes from the environment, so that no secret is on the
command line: MAIL_HOST, IMAP_PORT, POP_PORT, SMTP_PORT, MAIL_CAFILE (the only trusted CA),
MAIL_USER, MAIL_TOKEN (an access token), MAIL_PASSWORD, MAIL_TO, MAIL_MESSAGE (base64).
It prints one JSON object: {"ok": bool, "error": "...", ...}.
"""
import base64
import imaplib
import json
import os
import poplib
import smtplib
import ssl
import sys


def env(k):
    return os.environ[k]


def context():
    # With a cafile, the default context trusts that CA only (not the system's).
    return ssl.create_default_context(cafile=env("MAIL_CAFILE"))


def xoauth2():
    return "user=%s\x01auth=Bearer %s\x01\x01" % (env("MAIL_USER"), env("MAIL_TOKEN"))


def text(e):
    a = e.args[-1] if e.args else e
    if isinstance(a, bytes):
        return a.decode("utf-8", "replace")
    if isinstance(a, list) and a and isinstance(a[0], bytes):
        return a[0].decode("utf-8", "replace")
    return str(a)


def imap(mode):
    c = imaplib.IMAP4_SSL(env("MAIL_HOST"), int(env("IMAP_PORT")), ssl_context=context())
    out = {"greeting": c.welcome.decode(), "capabilities": list(c.capabilities)}
    try:
        if mode == "imap_login":
            c.login(env("MAIL_USER"), env("MAIL_PASSWORD"))
        else:
            # imaplib sends AUTHENTICATE XOAUTH2, waits for the continuation, then the response.
            typ, data = c.authenticate("XOAUTH2", lambda _: xoauth2().encode())
            out["authenticate"] = data[0].decode()
        typ, data = c.select("INBOX")
        out["select"] = [typ, data[0].decode()]
        if mode == "imap_fetch_last":
            n = int(data[0])
            typ, data = c.fetch(str(n), "(BODY.PEEK[])")
            out["message"] = base64.b64encode(data[0][1]).decode()
        c.logout()
        out["ok"] = True
    except imaplib.IMAP4.error as e:
        out["ok"], out["error"] = False, text(e)
    return out


def pop(mode):
    c = poplib.POP3_SSL(env("MAIL_HOST"), int(env("POP_PORT")), context=context())
    out = {"greeting": c.getwelcome().decode(), "capa": {k: v for k, v in c.capa().items()}}
    try:
        # Exchange wants the two-step form: AUTH XOAUTH2, "+ ", then the base64 response.
        out["auth"] = c._shortcmd("AUTH XOAUTH2").decode()
        out["auth2"] = c._shortcmd(base64.b64encode(xoauth2().encode()).decode()).decode()
        count, size = c.stat()
        out["stat"] = [count, size]
        if mode == "pop_retr_last" and count:
            resp, lines, octets = c.retr(count)
            out["message"] = base64.b64encode(b"\r\n".join(lines) + b"\r\n").decode()
        c.quit()
        out["ok"] = True
    except poplib.error_proto as e:
        out["ok"], out["error"] = False, text(e)
    return out


def smtp(mode):
    c = smtplib.SMTP(env("MAIL_HOST"), int(env("SMTP_PORT")), timeout=20)
    out = {}
    c.ehlo("pyclient.example")
    out["features_before_tls"] = sorted(c.esmtp_features)
    c.starttls(context=context())
    c.ehlo("pyclient.example")
    out["auth_after_tls"] = c.esmtp_features.get("auth", "")
    try:
        if mode == "smtp_login":
            c.login(env("MAIL_USER"), env("MAIL_PASSWORD"))
        else:
            # smtplib sends AUTH XOAUTH2 <initial response> on one line.
            code, resp = c.auth("XOAUTH2", lambda challenge=None: xoauth2())
            out["auth"] = [code, resp.decode()]
        msg = base64.b64decode(os.environ.get("MAIL_MESSAGE", ""))
        if msg:
            out["sendmail"] = c.sendmail(env("MAIL_USER"), [env("MAIL_TO")], msg)
        c.quit()
        out["ok"] = True
    except smtplib.SMTPResponseException as e:
        out["ok"], out["code"], out["error"] = False, e.smtp_code, e.smtp_error.decode()
    return out


def main():
    mode = sys.argv[1]
    fn = {"imap": imap, "pop": pop, "smtp": smtp}[mode.split("_")[0]]
    print(json.dumps(fn(mode)))


main()
