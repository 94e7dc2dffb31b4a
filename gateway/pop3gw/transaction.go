package pop3gw

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/graph"
)

var (
	errQuit   = errors.New("pop3gw: the program quit")
	errTooBad = errors.New("pop3gw: too many bad commands")
)

// graphWait bounds the Graph requests a program waits for without seeing progress (the listing at
// login, the deletions at QUIT), Graph's throttling pauses included: programs give up on a silent
// server after a few minutes (fetchmail: 5), and an answer is better than a hang-up.
const graphWait = 2 * time.Minute

// capabilities is the CAPA list in the TRANSACTION state (RFC 2449).
const capabilities = "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nUSER\r\n."

// loop reads and answers commands until QUIT or an error.
func (s *session) loop() error {
	line := make([]byte, 0, maxLine)
	for {
		if s.r.Buffered() == 0 {
			if err := s.w.Flush(); err != nil {
				return err
			}
		}
		s.setDeadline(true)
		l, err := readLine(s.r, line)
		if errors.Is(err, errLineTooLong) {
			err = s.bad("-ERR The command line is too long.")
		} else if err == nil {
			err = s.dispatch(parseCommand(l))
		}
		if err != nil {
			return err
		}
	}
}

// bad answers a bad command, or ends the session after too many.
func (s *session) bad(line string) error {
	s.errs++
	if s.errs > maxBad {
		_ = s.reply("-ERR Too many bad commands; closing the connection.")
		return errTooBad
	}
	return s.reply(line)
}

// dispatch answers one command.
func (s *session) dispatch(c command) error {
	if n, ok := arguments(c.name); ok && len(c.args) != n {
		return s.bad(fmt.Sprintf("-ERR %s takes %d argument(s).", c.name, n))
	}
	switch c.name {
	case "STAT":
		n, size := s.stat()
		return s.reply(fmt.Sprintf("+OK %d %d", n, size))
	case "LIST", "UIDL":
		return s.list(c)
	case "RETR", "TOP":
		return s.retr(c)
	case "DELE":
		i, bad := s.message(c.args[0])
		if bad != "" {
			return s.bad(bad)
		}
		s.deleted[i] = true
		return s.reply(fmt.Sprintf("+OK Message %s marked; it is deleted at QUIT.", c.args[0]))
	case "RSET":
		clear(s.deleted)
		n, size := s.stat()
		return s.reply(fmt.Sprintf("+OK The Inbox has %d messages (%d octets).", n, size))
	case "NOOP":
		return s.reply("+OK")
	case "CAPA":
		return s.reply(capabilities)
	case "QUIT":
		return s.quit()
	case "USER", "PASS", "AUTH", "APOP", "STLS":
		return s.bad("-ERR Already logged in.")
	}
	return s.bad("-ERR Unknown command; this server takes STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, CAPA and QUIT.")
}

// arguments is how many arguments a command takes, for those that take a fixed number.
func arguments(name string) (n int, fixed bool) {
	switch name {
	case "STAT", "RSET", "NOOP", "QUIT", "CAPA":
		return 0, true
	case "RETR", "DELE":
		return 1, true
	case "TOP":
		return 2, true
	}
	return 0, false
}

// message finds the message an argument numbers, not marked deleted; bad is the reply otherwise.
func (s *session) message(arg string) (i int, bad string) {
	n, err := strconv.Atoi(arg)
	if err != nil || strings.HasPrefix(arg, "+") {
		return 0, "-ERR A message number is expected."
	}
	if n < 1 || n > len(s.msgs) {
		return 0, fmt.Sprintf("-ERR There is no message %d.", n)
	}
	if s.deleted[n-1] {
		return 0, fmt.Sprintf("-ERR Message %d is deleted.", n)
	}
	return n - 1, ""
}

// list answers LIST and UIDL, for one message or all.
func (s *session) list(c command) error {
	if len(c.args) > 1 {
		return s.bad(fmt.Sprintf("-ERR %s takes a message number or none.", c.name))
	}
	entry := func(i int) string {
		if c.name == "UIDL" {
			return fmt.Sprintf("%d %s", i+1, uidl(s.msgs[i].ID))
		}
		return fmt.Sprintf("%d %d", i+1, s.msgs[i].Size)
	}
	if len(c.args) == 1 {
		i, bad := s.message(c.args[0])
		if bad != "" {
			return s.bad(bad)
		}
		return s.reply("+OK " + entry(i))
	}
	n, size := s.stat()
	s.w.WriteString(fmt.Sprintf("+OK %d messages (%d octets)\r\n", n, size))
	for i := range s.msgs {
		if !s.deleted[i] {
			s.w.WriteString(entry(i) + "\r\n")
		}
	}
	return s.reply(".")
}

// quit enters the UPDATE state: the marked messages are deleted, and the session ends.
func (s *session) quit() error {
	var ids []string
	for i, d := range s.deleted {
		if d {
			ids = append(ids, s.msgs[i].ID)
		}
	}
	if len(ids) > 0 {
		ctx, cancel := context.WithTimeout(s.ctx, graphWait)
		err := s.box.Delete(ctx, ids)
		cancel()
		if err != nil {
			s.o.Log.Warn("pop3 gateway: deleting at QUIT failed", "messages", len(ids), "err", err)
			_ = s.reply("-ERR [SYS/TEMP] The marked messages may not all have been deleted: " + graphTrouble(s.ctx, err) + "; those left stay in the Inbox.")
			return errQuit
		}
	}
	_ = s.reply(fmt.Sprintf("+OK Signing off; %d messages deleted.", len(ids)))
	return errQuit
}

// graphTrouble says in a clause what went wrong with a Graph request, for the program's user;
// the log has the details.
func graphTrouble(ctx context.Context, err error) string {
	var ge *graph.Error
	switch {
	case graph.IsThrottled(err) && errors.As(err, &ge) && ge.RetryAfter > 0:
		return fmt.Sprintf("Microsoft Graph is throttling this mailbox for %v", ge.RetryAfter.Round(time.Second))
	case graph.IsThrottled(err):
		return "Microsoft Graph is throttling this mailbox"
	case errors.As(err, &ge) && (ge.Status == 401 || ge.Status == 403):
		return "Microsoft Graph refused access to this mailbox (the proxy log says why)"
	case errors.As(err, &ge) && ge.Status >= 500:
		return "Microsoft Graph failed"
	case ctx.Err() != nil:
		return "the session was ending"
	case errors.Is(err, context.DeadlineExceeded):
		return "Microsoft Graph did not answer in time"
	}
	return "the request to Microsoft Graph failed (the proxy log says why)"
}
