package mail

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckIMAPID: ids as List gives them and bare UIDs pass; anything else is ErrBadID, naming the
// id in words of the library (no CLI command).
func TestCheckIMAPID(t *testing.T) {
	good := imapID{validity: 7, uid: 42, folder: "Archive/2026"}.String()
	for _, id := range []string{good, "42", "0.1.SU5CT1g"} {
		if err := CheckIMAPID(id); err != nil {
			t.Errorf("CheckIMAPID(%q): %v", id, err)
		}
	}
	for _, id := range []string{"", "0", "-1", "not-an-id", "1.2", "1.0.SU5CT1g", "1.2.%%%", "1.2.", "x.2.SU5CT1g", "1.2.3.4"} {
		err := CheckIMAPID(id)
		if !errors.Is(err, ErrBadID) || !strings.Contains(err.Error(), "is not an IMAP message id") {
			t.Errorf("CheckIMAPID(%q) = %v, want ErrBadID", id, err)
			continue
		}
		if strings.Contains(err.Error(), "mail list") {
			t.Errorf("CheckIMAPID(%q) speaks of the CLI: %v", id, err)
		}
	}
}
