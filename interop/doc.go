// Package interop holds mailoauth's interoperability tests against real mail servers: Dovecot (IMAP,
// POP3, LMTP and the SASL service) and Postfix (submission), started per test run on loopback and set up
// to accept the in-process emulator's tokens. The package has no code of its own: everything is in its
// _test.go files and testdata/, which build on Unix only, like the servers they start. See README.md in
// this directory.
package interop
