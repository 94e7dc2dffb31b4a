package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/check"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/mail"
	"github.com/mailoauth/mailoauth/mail/graphmail"
	"github.com/mailoauth/mailoauth/pop3"
)

// Transports, as --via names them.
const (
	viaIMAP  = "imap"
	viaPOP   = "pop"
	viaSMTP  = "smtp"
	viaGraph = "graph"
)

// checkVia refuses a transport the command does not support, before anything connects.
func checkVia(via string, allowed ...string) error {
	if !slices.Contains(allowed, via) {
		return usagef("--via %q: use %s", via, strings.Join(allowed, ", "))
	}
	return nil
}

// checkID refuses a malformed message id before anything connects (exit 2). The library's error
// speaks of Go; where ids come from is the CLI's to say.
func (a *app) checkID(account, via, id string) error {
	if via != viaIMAP {
		return nil // POP3's UIDLs and Graph's ids have no form to check here: the server says
	}
	if err := mail.CheckIMAPID(id); err != nil {
		return usageError{fmt.Errorf("%w; %s prints the ids", err, a.suggest("mail", "list", account))}
	}
	return nil
}

// mailError gives mail errors their exit code: what the protocol cannot do is a usage error.
func mailError(err error) error {
	if errors.Is(err, mail.ErrNotSupported) {
		return usageError{err}
	}
	return err
}

// openReader connects to the account's mailbox over via.
func (a *app) openReader(ctx context.Context, acc *auth.Account, via string, progress mail.Progress) (mail.Reader, error) {
	switch via {
	case viaIMAP:
		c, err := imap.Dial(ctx, imap.ForAccount(acc))
		if err != nil {
			return nil, err
		}
		return &mail.IMAPReader{C: c, Progress: progress}, nil
	case viaPOP:
		c, err := pop3.Dial(ctx, pop3.ForAccount(acc))
		if err != nil {
			return nil, err
		}
		return &mail.POPReader{C: c, Progress: progress}, nil
	case viaGraph:
		c := graph.ForAccount(acc)
		return &graphmail.Reader{C: c}, nil
	}
	return nil, usagef("--via %q: use imap, pop or graph", via)
}

// withReader opens the account and a reader, runs fn, and closes the reader. An error from Close
// matters when fn succeeded (POP3 commits deletions at QUIT).
func (a *app) withReader(cmd *cobra.Command, account, via string, progress mail.Progress, fn func(mail.Reader) error) error {
	acc, err := a.account(account, true)
	if err != nil {
		return err
	}
	r, err := a.openReader(cmd.Context(), acc, via, progress)
	if err != nil {
		return explained(cmd.Context(), acc, via, err)
	}
	err = fn(r)
	if cerr := r.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing the session: %w", cerr)
	}
	return explained(cmd.Context(), acc, via, mailError(err))
}

// explained adds the likely cause to a server's refusal (the same knowledge `check` uses), so a
// refused `mail` or `send` says what to fix, not only what the server said.
func explained(ctx context.Context, acc *auth.Account, via string, err error) error {
	if err == nil {
		return nil
	}
	var ue usageError
	if errors.As(err, &ue) || isLocal(err) {
		return err // found here, not refused by a server: nothing to explain
	}
	// The --via names are the protocol names (imap, pop, graph). The finding comes from the one
	// catalogue (doctor/catalog), as in check, doctor and the proxy.
	if f, ok := check.Explain(ctx, acc, via, err); ok {
		return fmt.Errorf("%w\nlikely cause: %s\nfix: %s [%s]", err, f.Cause, f.Fix, f.Code)
	}
	return err
}

// progressMin is the size from which a transfer shows progress.
const progressMin = 1 << 20

// progress returns a progress display on stderr when stderr is a terminal, and nil otherwise: nothing
// is shown when piped or redirected.
func (a *app) progress(label string) mail.Progress {
	f, ok := a.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	var last time.Time
	finished := false
	return func(done, total int64) {
		if total < progressMin || finished {
			return
		}
		if done < total && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		fmt.Fprintf(f, "\r%s: %3d%% (%s of %s)", label, done*100/total, humanSize(done), humanSize(total))
		if done >= total {
			finished = true
			fmt.Fprintln(f)
		}
	}
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (a *app) mailCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mail",
		Short: "Read a mailbox: folders, list, get, move, delete (IMAP, POP3 or Graph)",
		Long: `Read an account's mailbox. --via imap (the default), pop or graph.

Message ids are the transport's own and valid only with the same --via: over IMAP "UIDVALIDITY.UID.F"
(F is the folder, base64url), so they name their folder and go stale if the folder's UIDVALIDITY
changes; over POP3 the server's UIDL; over Graph Graph's message id (which changes when it moves).
Graph listings carry no size (0).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.mailFoldersCommand(), a.mailListCommand(), a.mailGetCommand(), a.mailMoveCommand(), a.mailDeleteCommand())
	return cmd
}

func (a *app) mailFoldersCommand() *cobra.Command {
	via := viaIMAP
	cmd := &cobra.Command{
		Use:   "folders ACCOUNT",
		Short: "List the mailbox's folders with their message and unread counts",
		Long: `List the folders. --json prints an array of {"name", "role", "total", "unread"}; role is one of
inbox, sent, drafts, trash, junk, archive, or absent.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := checkVia(via, viaIMAP, viaGraph); err != nil {
				return err
			}
			return a.withReader(cmd, argv[0], via, nil, func(r mail.Reader) error {
				folders, err := r.Folders(cmd.Context())
				if err != nil {
					return err
				}
				if a.jsonOut {
					if folders == nil {
						folders = []mail.Folder{}
					}
					return json.NewEncoder(a.stdout).Encode(folders)
				}
				w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "FOLDER\tROLE\tMESSAGES\tUNREAD")
				for _, f := range folders {
					fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", f.Name, f.Role, f.Total, f.Unread)
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&via, "via", via, "imap or graph")
	return cmd
}

func (a *app) mailListCommand() *cobra.Command {
	var (
		via    = viaIMAP
		folder string
		limit  int
		unseen bool
	)
	cmd := &cobra.Command{
		Use:   "list ACCOUNT",
		Short: "List the newest messages of a folder",
		Long: `List the newest messages of a folder (default the inbox), newest first.
--json prints an array of {"id", "folder", "subject", "from", "to", "date", "size", "unread",
"has_attachments"} ("unread" left out over POP3); id is valid for mail get, move and delete with the
same --via.
Over POP3 there is one folder and no read state (--folder other than INBOX and --unseen are refused),
and listing downloads each listed message, since POP3 summaries need the headers.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := checkVia(via, viaIMAP, viaPOP, viaGraph); err != nil {
				return err
			}
			if limit < 0 {
				return usagef("--limit %d: use a positive number, or 0 for all", limit)
			}
			return a.withReader(cmd, argv[0], via, nil, func(r mail.Reader) error {
				list, err := r.List(cmd.Context(), folder, limit, unseen)
				if err != nil {
					return err
				}
				if a.jsonOut {
					return json.NewEncoder(a.stdout).Encode(listJSON(list, via != viaPOP))
				}
				w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tDATE\tFROM\tSUBJECT\tSIZE\t")
				for _, s := range list {
					mark := ""
					if s.Unread && via != viaPOP {
						mark = "unread"
					}
					if s.HasAttachments {
						mark = strings.TrimSpace(mark + " 📎")
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Date.Local().Format("2006-01-02 15:04"), clip(s.From, 40), clip(s.Subject, 60), humanSize(s.Size), mark)
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&via, "via", via, "imap, pop or graph")
	cmd.Flags().StringVar(&folder, "folder", "", "the folder (default the inbox)")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many messages, the newest; 0 for all")
	cmd.Flags().BoolVar(&unseen, "unseen", false, "only unread messages")
	return cmd
}

// listedMessage is one message of `mail list --json`: a mail.Summary whose unread is left out where the
// protocol has no read state (POP3), rather than claimed.
type listedMessage struct {
	mail.Summary
	Unread *bool `json:"unread,omitempty"`
}

// listJSON is list as `mail list --json` prints it: [] rather than null, and to as [] too.
func listJSON(list []mail.Summary, readState bool) []listedMessage {
	out := make([]listedMessage, len(list))
	for i, s := range list {
		if s.To == nil {
			s.To = []string{}
		}
		out[i].Summary = s
		if readState {
			out[i].Unread = &out[i].Summary.Unread
		}
	}
	return out
}

func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// getJSON is `mail get --json`: the message as listed (unread left out over POP3), and its contents.
type getJSON struct {
	listedMessage
	Cc          []string         `json:"cc"`
	Text        string           `json:"text"`
	HTML        string           `json:"html"`
	Attachments []attachmentJSON `json:"attachments"`
}

type attachmentJSON struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int    `json:"size"`
	SavedAs     string `json:"saved_as,omitempty"`
}

// checkSaveDir refuses a --save-attachments directory that is not there before anything connects,
// saying which way it is wrong.
func checkSaveDir(dir string) error {
	if dir == "" {
		return nil
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return usagef("--save-attachments %s: the directory does not exist; create it (mkdir -p %s) or name another", dir, shellQuote(dir))
	case err != nil:
		return usagef("--save-attachments %s: %v; name a directory you can write to", dir, err)
	case !st.IsDir():
		return usagef("--save-attachments %s is a file, not a directory; name a directory", dir)
	}
	return nil
}

func (a *app) mailGetCommand() *cobra.Command {
	var (
		via    = viaIMAP
		folder string
		raw    bool
		save   string
	)
	cmd := &cobra.Command{
		Use:   "get ACCOUNT ID",
		Short: "Show a message, print it raw, or save its attachments",
		Long: `Show a message: its header fields, text body (the HTML body when there is no text) and attachments.
--raw prints the RFC 5322 message exactly as the server holds it. --save-attachments DIR writes the
attachments into DIR (which must exist) under safe names: no path components, never overwriting a
file (a taken name becomes "name (1).ext"). Over IMAP the message is not marked read.
--json prints {"id", "folder", "subject", "from", "to", "cc", "date", "size", "unread",
"has_attachments", "text", "html", "attachments": [{"name", "content_type", "size", "saved_as"}]}
("unread" left out over POP3, which keeps no read state).`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := checkVia(via, viaIMAP, viaPOP, viaGraph); err != nil {
				return err
			}
			if err := a.checkID(argv[0], via, argv[1]); err != nil {
				return err
			}
			if raw && a.jsonOut {
				return usagef("--raw and --json do not go together")
			}
			if err := checkSaveDir(save); err != nil {
				return err
			}
			return a.withReader(cmd, argv[0], via, a.progress("Downloading"), func(r mail.Reader) error {
				m, err := r.Get(cmd.Context(), argv[1], folder)
				if err != nil {
					return err
				}
				var saved []string
				if save != "" {
					saved, err = mail.SaveAttachments(m, save)
					if err != nil {
						return err
					}
				}
				if raw {
					_, err := a.stdout.Write(m.Raw)
					return err
				}
				if a.jsonOut {
					out := getJSON{listedMessage: listJSON([]mail.Summary{m.Summary}, via != viaPOP)[0], Cc: m.Cc, Text: m.Text, HTML: m.HTML, Attachments: []attachmentJSON{}}
					if out.Cc == nil {
						out.Cc = []string{}
					}
					for i, at := range m.Attachments {
						j := attachmentJSON{Name: at.Name, ContentType: at.ContentType, Size: len(at.Data)}
						if i < len(saved) {
							j.SavedAs = saved[i]
						}
						out.Attachments = append(out.Attachments, j)
					}
					return json.NewEncoder(a.stdout).Encode(out)
				}
				w := a.stdout
				fmt.Fprintf(w, "Id:      %s\nFolder:  %s\nDate:    %s\nFrom:    %s\nTo:      %s\n", m.ID, m.Folder, m.Date.Local().Format(time.RFC1123Z), m.From, strings.Join(m.To, ", "))
				if len(m.Cc) > 0 {
					fmt.Fprintf(w, "Cc:      %s\n", strings.Join(m.Cc, ", "))
				}
				fmt.Fprintf(w, "Subject: %s\n", m.Subject)
				for i, at := range m.Attachments {
					line := fmt.Sprintf("Attachment: %s (%s, %s)", at.Name, at.ContentType, humanSize(int64(len(at.Data))))
					if i < len(saved) {
						line += " saved as " + saved[i]
					}
					fmt.Fprintln(w, line)
				}
				body := m.Text
				if body == "" && m.HTML != "" {
					body = m.HTML
					fmt.Fprintln(w, "(HTML body; --raw prints the whole message)")
				}
				fmt.Fprintln(w)
				fmt.Fprint(w, strings.ReplaceAll(body, "\r\n", "\n"))
				if body != "" && !strings.HasSuffix(body, "\n") {
					fmt.Fprintln(w)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&via, "via", via, "imap, pop or graph")
	cmd.Flags().StringVar(&folder, "folder", "", "the folder, for an id that does not name one (a bare IMAP UID)")
	cmd.Flags().BoolVar(&raw, "raw", false, "print the RFC 5322 message as stored")
	cmd.Flags().StringVar(&save, "save-attachments", "", "save the attachments into this directory")
	return cmd
}

func (a *app) mailMoveCommand() *cobra.Command {
	via := viaIMAP
	cmd := &cobra.Command{
		Use:   "move ACCOUNT ID FOLDER",
		Short: "Move a message to another folder",
		Long: `Move a message to another folder (IMAP MOVE). Prints the message's new id when the server gives
it. --json prints {"id", "folder", "new_id"}.`,
		Args: args(cobra.ExactArgs(3)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := checkVia(via, viaIMAP, viaGraph); err != nil {
				return err
			}
			if err := a.checkID(argv[0], via, argv[1]); err != nil {
				return err
			}
			return a.withReader(cmd, argv[0], via, nil, func(r mail.Reader) error {
				newID, err := r.Move(cmd.Context(), argv[1], argv[2])
				if err != nil {
					return err
				}
				if a.jsonOut {
					return json.NewEncoder(a.stdout).Encode(map[string]string{"id": argv[1], "folder": argv[2], "new_id": newID})
				}
				if newID != "" {
					fmt.Fprintf(a.stdout, "Moved %s to %s; its id there is %s\n", argv[1], argv[2], newID)
				} else {
					fmt.Fprintf(a.stdout, "Moved %s to %s.\n", argv[1], argv[2])
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&via, "via", via, "imap or graph")
	return cmd
}

func (a *app) mailDeleteCommand() *cobra.Command {
	via := viaIMAP
	cmd := &cobra.Command{
		Use:   "delete ACCOUNT ID",
		Short: "Delete a message",
		Long: `Delete a message. Over IMAP it is flagged \Deleted and expunged alone (UID EXPUNGE): gone, not
moved to Deleted Items (use mail move ID "Deleted Items" for that). Over POP3 it is deleted at the
end of the session. --json prints {"id", "deleted"}.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := checkVia(via, viaIMAP, viaPOP, viaGraph); err != nil {
				return err
			}
			if err := a.checkID(argv[0], via, argv[1]); err != nil {
				return err
			}
			return a.withReader(cmd, argv[0], via, nil, func(r mail.Reader) error {
				if err := r.Delete(cmd.Context(), argv[1]); err != nil {
					return err
				}
				if a.jsonOut {
					return json.NewEncoder(a.stdout).Encode(map[string]any{"id": argv[1], "deleted": true})
				}
				fmt.Fprintf(a.stdout, "Deleted %s.\n", argv[1])
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&via, "via", via, "imap, pop or graph")
	return cmd
}
