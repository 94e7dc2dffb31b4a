package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	netmail "net/mail"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/mail"
	"github.com/mailoauth/mailoauth/mail/graphmail"
	"github.com/mailoauth/mailoauth/smtp"
)

// maxSubmission bounds a message read from standard input: Exchange Online's SIZE (150 MiB).
const maxSubmission = 157286400

// sendRaw submits a message over via; a refusal comes back with its likely cause.
func (a *app) sendRaw(ctx context.Context, acc *auth.Account, via string, env mail.Envelope, raw []byte) (err error) {
	defer func() { err = explained(ctx, acc, via, err) }()
	switch via {
	case viaGraph:
		// Graph takes the recipients from the message's headers: graphmail.SendMIME adds the
		// envelope's others as Bcc (which Graph removes).
		err := graphmail.SendMIME(ctx, graph.ForAccount(acc), raw, env.To)
		if errors.Is(err, graphmail.ErrNotRecipient) {
			return usageError{fmt.Errorf("%w (use -t, or --via smtp)", err)}
		}
		return err
	case viaSMTP:
	default:
		return usagef("--via %q: use smtp or graph", via)
	}
	c, err := smtp.Dial(ctx, smtp.ForAccount(acc))
	if err != nil {
		return err
	}
	s := &mail.SMTPSender{C: c, Progress: a.progress("Sending")}
	if err := s.Send(ctx, env, raw); err != nil {
		c.Close()
		return err
	}
	if err := c.Quit(); err != nil {
		c.Close()
	}
	return nil
}

// sentJSON is what send and sendmail print with --json.
type sentJSON struct {
	Account    string   `json:"account"`
	Via        string   `json:"via"`
	From       string   `json:"from"`
	Recipients []string `json:"recipients"`
	Size       int      `json:"size"`
}

func (a *app) sendCommand() *cobra.Command {
	var (
		d        mail.Draft
		body     string
		bodyFile string
		attach   []string
		via      = viaSMTP
	)
	cmd := &cobra.Command{
		Use:   "send ACCOUNT --to ADDR... --subject S (--body TEXT|--body-file F)",
		Short: "Send a message (text or HTML, attachments, cc and bcc) from the account's mailbox",
		Long: `Build and send a message from the account's mailbox (its "mailbox", else its "email").
--to, --cc, --bcc take an address each and may repeat ("Name <addr>" and comma lists work too); Bcc
recipients get the message without appearing in it. --body-file - reads the body from standard input.
--attach FILE may repeat; a missing file is named and nothing is sent (exit 2). Non-ASCII subjects
and file names are encoded (RFC 2047, RFC 2231). --json prints {"account", "via", "from",
"recipients", "size"}.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if via != viaSMTP && via != viaGraph {
				return usagef("--via %q: use smtp or graph", via)
			}
			if len(d.To)+len(d.Cc)+len(d.Bcc) == 0 {
				return usagef("no recipient: give --to (or --cc, --bcc)")
			}
			for _, r := range d.Recipients() {
				if _, err := netmail.ParseAddressList(r); err != nil {
					return usagef("recipient %q is not an email address; give one like bob@contoso.com, or \"Bob <bob@contoso.com>\"", r)
				}
			}
			switch {
			case cmd.Flags().Changed("body") && bodyFile != "":
				return usagef("give --body or --body-file, not both")
			case bodyFile == "-":
				b, err := io.ReadAll(io.LimitReader(a.stdin, maxSubmission))
				if err != nil {
					return err
				}
				d.Text = string(b)
			case bodyFile != "":
				b, err := os.ReadFile(bodyFile)
				if err != nil {
					return usagef("--body-file %s: %v", bodyFile, errors.Unwrap(err))
				}
				d.Text = string(b)
			case cmd.Flags().Changed("body"):
				d.Text = body
			default:
				return usagef("no body: give --body TEXT or --body-file FILE")
			}
			for _, p := range attach { // every file read before anything connects
				at, err := mail.AttachFile(p)
				if err != nil {
					return usageError{fmt.Errorf("%w; nothing was sent", err)}
				}
				d.Attachments = append(d.Attachments, at)
			}
			acc, err := a.account(argv[0], true)
			if err != nil {
				return err
			}
			if via == viaGraph {
				c := graph.ForAccount(acc)
				c.Progress = a.progress("Uploading")
				if err := explained(cmd.Context(), acc, via, graphmail.Send(cmd.Context(), c, d)); err != nil {
					return err
				}
				return a.reportSent(argv[0], via, mail.Envelope{From: acc.Mailbox(), To: d.Recipients()}, 0)
			}
			d.From = []string{acc.Mailbox()}
			raw, err := mail.Build(d)
			if err != nil {
				return usageError{err}
			}
			env := mail.Envelope{From: acc.Mailbox(), To: d.Recipients()}
			if err := a.sendRaw(cmd.Context(), acc, via, env, raw); err != nil {
				return err
			}
			return a.reportSent(argv[0], via, env, len(raw))
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&d.To, "to", nil, "recipient (repeatable)")
	f.StringArrayVar(&d.Cc, "cc", nil, "copy recipient (repeatable)")
	f.StringArrayVar(&d.Bcc, "bcc", nil, "blind copy recipient (repeatable), not shown in the message")
	f.StringVar(&d.Subject, "subject", "", "subject")
	f.StringVar(&body, "body", "", "the body text")
	f.StringVar(&bodyFile, "body-file", "", "read the body from this file (- for standard input)")
	f.BoolVar(&d.HTML, "html", false, "the body is HTML")
	f.StringArrayVar(&attach, "attach", nil, "attach this file (repeatable)")
	f.StringVar(&via, "via", via, "smtp or graph")
	return cmd
}

func (a *app) reportSent(account, via string, env mail.Envelope, size int) error {
	if a.jsonOut {
		return json.NewEncoder(a.stdout).Encode(sentJSON{Account: account, Via: via, From: env.From, Recipients: env.To, Size: size})
	}
	sz := ""
	if size > 0 {
		sz = " (" + humanSize(int64(size)) + ")"
	}
	fmt.Fprintf(a.stdout, "Sent from %s to %s over %s%s.\n", env.From, strings.Join(env.To, ", "), strings.ToUpper(via), sz)
	return nil
}

func (a *app) sendmailCommand() *cobra.Command {
	var (
		extract bool
		from    string
		account string
		via     = viaSMTP
	)
	cmd := &cobra.Command{
		Use:   "sendmail [-t] [-f FROM] [--account ACCOUNT] [RCPT...]",
		Short: "Send the RFC 5322 message on standard input, as /usr/sbin/sendmail does",
		Long: `A stand-in for /usr/sbin/sendmail in cron jobs and scripts: reads one RFC 5322 message on standard
input and sends it to the RCPT arguments, and with -t also to its To, Cc and Bcc (Bcc is removed from
the message). From, Date and Message-ID are added when missing. -f sets the envelope sender (default:
the account's mailbox). The account is --account, else the only one configured, else the one whose
email or mailbox is the -f address. -i and -o... are accepted and ignored, for compatibility.
It prints nothing on success (with --json: {"account", "via", "from", "recipients", "size"}).
--via graph submits the message through Graph's sendMail in MIME format (about 3 MB at most): Graph
delivers to the message's To, Cc and Bcc, so the other recipients are added as Bcc, which Graph
removes; without -t, a To or Cc address that is not a recipient is refused. Graph may add header
fields, and keeps a copy in Sent Items.
A message that is not RFC 5322, or has no recipient, is refused with exit 2, and nothing is sent.`,
		Args: args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, rcpts []string) error {
			if !extract && len(rcpts) == 0 {
				return usagef("no recipients: give them as arguments, or -t to take them from the message")
			}
			switch via {
			case viaSMTP, viaGraph:
			default:
				return usagef("--via %q: use smtp or graph", via)
			}
			name, err := a.sendmailAccount(account, from)
			if err != nil {
				return err
			}
			acc, err := a.account(name, false)
			if err != nil {
				return err
			}
			raw, err := io.ReadAll(io.LimitReader(a.stdin, maxSubmission+1))
			if err != nil {
				return fmt.Errorf("cannot read the message on standard input: %w", err)
			}
			if len(raw) > maxSubmission {
				return usagef("the message on standard input is larger than %d bytes, the most Exchange Online accepts", maxSubmission)
			}
			sender := from
			if sender == "" {
				sender = acc.Mailbox()
			}
			out, env, err := mail.Prepare(raw, mail.Submission{From: sender, ExtractRecipients: extract, Recipients: rcpts})
			if err != nil {
				return usageError{fmt.Errorf("the message on standard input is %w; nothing was sent", err)}
			}
			if len(env.To) == 0 {
				return usagef("the message on standard input has no To, Cc or Bcc recipient and none was given; nothing was sent")
			}
			if err := a.sendRaw(cmd.Context(), acc, via, env, out); err != nil {
				return err
			}
			if a.jsonOut {
				return a.reportSent(name, via, env, len(out))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&extract, "read-recipients", "t", false, "take recipients from the message's To, Cc and Bcc")
	f.StringVarP(&from, "from", "f", "", "envelope sender (and From when the message has none)")
	f.StringVar(&account, "account", "", "the account to send with")
	f.StringVar(&via, "via", via, "smtp or graph")
	f.BoolP("ignore-dots", "i", false, "accepted for compatibility (a lone dot never ends the message here)")
	f.StringP("option", "o", "", "sendmail option, accepted and ignored")
	f.String("F", "", "full name, accepted and ignored")
	_ = f.MarkHidden("option")
	_ = f.MarkHidden("F")
	return cmd
}

// sendmailAccount picks the account: the one named, the only one, or the one sending as from.
func (a *app) sendmailAccount(named, from string) (string, error) {
	if named != "" {
		return named, nil
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return "", err
	}
	names := cfg.Names()
	if len(names) == 1 {
		return names[0], nil
	}
	if from == "" {
		return "", usagef("%d accounts are configured: choose one with --account, or give -f with its address", len(names))
	}
	var match []string
	for _, n := range names {
		if sendsAs(cfg.Accounts[n], from) {
			match = append(match, n)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return "", usagef("no account has the address %s as its email or mailbox: choose one with --account", from)
	}
	return "", usagef("accounts %s all send as %s: choose one with --account", strings.Join(match, ", "), from)
}

func sendsAs(c *config.Account, addr string) bool {
	mbox := c.Mailbox
	if mbox == "" {
		mbox = c.Email
	}
	return strings.EqualFold(mbox, addr)
}
