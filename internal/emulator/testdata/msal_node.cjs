// msal-node (npm @azure/msal-node) and nodemailer against the mailoauth emulator: every flow msal-node
// supports, then nodemailer sends with a token over SMTP (XOAUTH2). msal_node_test.go runs it with
// NODE_PATH naming the node_modules scripts/test installs, and checks what it prints: one JSON
// object, a result per flow. Tokens are printed for the test to verify; nothing else is.
//
// The environment names the emulator: AUTHORITY (https://host:port/TENANT), NODE_EXTRA_CA_CERTS (the
// emulator's CA, which Node adds to the roots it trusts), client ids and credentials, the SMTP server.
"use strict";
const fs = require("node:fs");
const http = require("node:http");
const crypto = require("node:crypto");
const env = process.env;
const results = {};

// --- docs/emulator-ci.md: node-apps ---
const msal = require("@azure/msal-node");
const authority = env.AUTHORITY; // https://emulator:8443/contoso: the emulator's identity platform
const auth = {
  authority,
  // A known authority is trusted as it is: no instance discovery at login.microsoftonline.com.
  knownAuthorities: [new URL(authority).host],
};
const daemon = new msal.ConfidentialClientApplication({
  auth: { ...auth, clientId: env.DAEMON_ID, clientSecret: env.DAEMON_SECRET },
});
const desktop = new msal.PublicClientApplication({ auth: { ...auth, clientId: env.DESKTOP_ID } });
// --- end ---

async function record(name, promise) {
  try {
    const r = await promise;
    results[name] = r && r.accessToken ? { ok: true, access_token: r.accessToken } : { ok: false, error: "no token" };
  } catch (e) {
    // msal-node's errors carry Entra's code and text, never a secret.
    results[name] = { ok: false, error: e.errorCode || e.name, error_description: e.errorMessage || e.message };
  }
  return results[name];
}

// The listener a desktop app opens for the authorization code's redirect.
function loopback() {
  return new Promise((resolve) => {
    let got;
    const done = new Promise((r) => (got = r));
    const srv = http.createServer((req, res) => {
      got(Object.fromEntries(new URL(req.url, "http://localhost").searchParams));
      res.end("signed in");
    });
    srv.listen(0, "127.0.0.1", () => resolve({ srv, done, uri: `http://localhost:${srv.address().port}` }));
  });
}

async function main() {
  const exchangeApp = ["https://outlook.office365.com/.default"];
  const imapScopes = ["https://outlook.office.com/IMAP.AccessAsUser.All"];
  const smtpScopes = ["https://outlook.office.com/SMTP.Send"];

  // Client credentials with the secret, then with the certificate (SHA-256 thumbprint, PEM key).
  await record("client_secret", daemon.acquireTokenByClientCredential({ scopes: exchangeApp }));
  const pem = fs.readFileSync(env.CERT_PEM, "utf8");
  const cert = new crypto.X509Certificate(pem);
  const certApp = new msal.ConfidentialClientApplication({
    auth: {
      ...auth, clientId: env.DAEMON_ID,
      clientCertificate: {
        thumbprintSha256: cert.fingerprint256.replaceAll(":", ""),
        privateKey: pem.match(/-----BEGIN PRIVATE KEY-----[^-]+-----END PRIVATE KEY-----/)[0],
      },
    },
  });
  await record("client_certificate", certApp.acquireTokenByClientCredential({ scopes: exchangeApp }));

  await record("password", desktop.acquireTokenByUsernamePassword({
    scopes: imapScopes, username: env.ROPC_USER, password: env.ROPC_PASSWORD,
  }));

  // Device code: the emulator runs with --auto-approve, so the user has signed in by the first poll.
  await record("device_code", desktop.acquireTokenByDeviceCode({ scopes: smtpScopes, deviceCodeCallback: () => {} }));

  // Authorization code with PKCE: the emulator (auto-approving) sends the browser's redirect to the
  // loopback listener, or answers with it when it cannot.
  const lb = await loopback();
  const pkce = await new msal.CryptoProvider().generatePkceCodes();
  const state = crypto.randomUUID();
  const url = await desktop.getAuthCodeUrl({
    scopes: imapScopes, redirectUri: lb.uri, codeChallenge: pkce.challenge, codeChallengeMethod: "S256", state,
  });
  const page = await fetch(url, { redirect: "manual" });
  const params = page.status === 302 || page.status === 303
    ? Object.fromEntries(new URL(page.headers.get("location")).searchParams)
    : await lb.done;
  lb.srv.close();
  if (params.state !== state) {
    results.auth_code = { ok: false, error: "state did not come back" };
  } else {
    await record("auth_code", desktop.acquireTokenByCode({
      code: params.code, scopes: imapScopes, redirectUri: lb.uri, codeVerifier: pkce.verifier,
    }));
  }

  // Silent: the emulator's access tokens live less than msal-node's five-minute renewal offset, so
  // the cached one counts as expired and msal-node redeems the refresh token.
  const accounts = await desktop.getTokenCache().getAllAccounts();
  const alice = accounts.find((a) => a.username === env.AUTO_USER);
  await record("silent", desktop.acquireTokenSilent({ account: alice, scopes: imapScopes }));

  // --- docs/emulator-ci.md: node-mail ---
  const nodemailer = require("nodemailer");
  const transport = nodemailer.createTransport({
    host: env.MAIL_HOST, port: Number(env.SMTP_PORT), secure: false, requireTLS: true, // STARTTLS, as :587
    tls: { ca: fs.readFileSync(env.NODE_EXTRA_CA_CERTS) },
    auth: { type: "OAuth2", user: env.AUTO_USER, accessToken: results.device_code.access_token },
  });
  // --- end ---
  try {
    const info = await transport.sendMail({
      from: env.AUTO_USER, to: env.ROPC_USER, subject: "from msal-node", text: "Hello.",
    });
    results.smtp_device = { ok: true, result: info.response };
  } catch (e) {
    results.smtp_device = { ok: false, error: String(e.response || e.message) };
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
