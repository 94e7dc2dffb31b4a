package smtpgw

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailoauth/mailoauth/doctor/catalog"
	"github.com/mailoauth/mailoauth/graph"
)

// refusal turns a failed submission into the program's SMTP reply, and logs why with the doctor's
// cause and fix. Throttling, Graph's failures and deadlines are 4xx (the program keeps the message
// and tries again); permissions, recipients and the message itself are 5xx.
func (se *session) refusal(err error) error {
	log := se.s.o.Log.With("mailbox", se.mb.Address, "account", se.mb.Account, "recipients", len(se.rcpts))
	subject := catalog.Subject{Account: se.mb.Account, Mailbox: se.mb.Address}
	var ge *graph.Error
	switch {
	case errors.As(err, &ge):
		f := catalog.GraphSend(subject, ge)
		log.Warn("smtp gateway: Graph refused the message", "status", ge.Status, "code", ge.Code, "request_id", ge.RequestID,
			"finding", f.Code, "cause", f.Cause, "fix", f.Fix)
		return graphReply(ge, se.mb.Address)
	case errors.Is(err, graph.ErrMIMEInvalid):
		log.Info("smtp gateway: the message is not valid MIME", "err", err)
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: safe(err.Error())}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		log.Warn("smtp gateway: Graph did not take the message in time", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "Microsoft Graph did not take the message in time; try again later"}
	}
	if f, ok := catalog.TokenError(subject, err); ok {
		log.Warn("smtp gateway: no Graph token for the mailbox", "err", err, "finding", f.Code, "cause", f.Cause, "fix", f.Fix)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
			Message: "The proxy could not get a Microsoft Graph token for the mailbox; try again later (the proxy's log says why)"}
	}
	log.Warn("smtp gateway: the message could not be sent", "err", err)
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Microsoft Graph could not be reached; try again later"}
}

// graphReply is the SMTP reply to one of Graph's refusals, with Graph's words made safe.
func graphReply(ge *graph.Error, mailbox string) *smtp.SMTPError {
	said := safe(fmt.Sprintf("%d %s: %s", ge.Status, ge.Code, ge.Message))
	reply := func(code int, ec smtp.EnhancedCode, msg string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg + " (Microsoft Graph: " + said + ")"}
	}
	later := "later"
	if ge.RetryAfter > 0 {
		later = "in " + ge.RetryAfter.Round(time.Second).String()
	}
	switch {
	case ge.Status == 429:
		return reply(451, smtp.EnhancedCode{4, 4, 5}, "Microsoft Graph is throttling this mailbox; try again "+later)
	case ge.Status >= 500:
		return reply(451, smtp.EnhancedCode{4, 3, 0}, "Microsoft Graph failed; try again "+later)
	case ge.Status == 401:
		return reply(451, smtp.EnhancedCode{4, 7, 0}, "Microsoft Graph refused the proxy's token; try again later (the proxy's log says why)")
	case ge.Code == "ErrorSendAsDenied":
		return reply(550, smtp.EnhancedCode{5, 7, 60}, "The mailbox "+mailbox+" may not send as the message's From address")
	case ge.Status == 403:
		return reply(550, smtp.EnhancedCode{5, 7, 1}, "Microsoft Graph does not let the proxy send from "+mailbox+" (the proxy's log says how to fix it)")
	case ge.Code == "ErrorInvalidRecipients":
		return reply(550, smtp.EnhancedCode{5, 1, 1}, "Microsoft Graph refused the recipients")
	case ge.Status == 413, ge.Code == "ErrorMessageSizeExceeded":
		return reply(552, smtp.EnhancedCode{5, 3, 4}, "The message is too large for Microsoft Graph")
	case ge.Status == 404:
		return reply(550, smtp.EnhancedCode{5, 1, 0}, "Microsoft Graph does not know the mailbox "+mailbox)
	}
	return reply(554, smtp.EnhancedCode{5, 6, 0}, "Microsoft Graph refused the message")
}
