package exchange

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode/utf16"
)

// frontEnd is the name of the Exchange front-end server the emulator pretends to be, in the shapes
// Exchange Online shows it (research/exchange-wire.md §0): AM0PR06CA0126, its FQDN
// AM0PR06CA0126.eurprd06.prod.outlook.com, the SMTP host AM0PR06CA0126.outlook.office365.com.
type frontEnd struct {
	Name   string // AM0PR06CA0126
	Region string // eurprd06
}

var sites = []struct{ prefix, region string }{
	{"AM", "eurprd"}, {"DB", "eurprd"}, {"LO", "GBRP"}, {"FR", "DEUP"}, {"MN", "namprd"}, {"BN", "namprd"},
	{"SN", "namprd"}, {"PH", "namprd"}, {"DM", "namprd"},
}

func randInt(n int64) int64 {
	v, _ := rand.Int(rand.Reader, big.NewInt(n))
	return v.Int64()
}

// newFrontEnd picks a plausible server name.
func newFrontEnd() frontEnd {
	s := sites[randInt(int64(len(sites)))]
	unit := randInt(9) + 1
	if strings.HasSuffix(s.region, "P") { // LO4P265CA0200.GBRP265: three-digit region numbers
		n := 200 + randInt(100)
		return frontEnd{Name: fmt.Sprintf("%s%dP%dCA%04d", s.prefix, unit, n, randInt(10000)), Region: fmt.Sprintf("%s%d", s.region, n)}
	}
	n := randInt(9) + 1
	return frontEnd{Name: fmt.Sprintf("%s%dPR%02dCA%04d", s.prefix, unit, n, randInt(10000)), Region: fmt.Sprintf("%s%02d", s.region, n)}
}

// FQDN is NAME.region.prod.outlook.com.
func (f frontEnd) FQDN() string { return f.Name + "." + f.Region + ".prod.outlook.com" }

// GreetingTag is what IMAP and POP3 greetings end with: base64 of the upper-case FQDN in UTF-16LE.
func (f frontEnd) GreetingTag() string {
	u := utf16.Encode([]rune(strings.ToUpper(f.FQDN())))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// SMTPHost is NAME.outlook.office365.com, the name in the SMTP banner and EHLO answer.
func (f frontEnd) SMTPHost() string { return f.Name + ".outlook.office365.com" }

// Bracket is the suffix of SMTP error replies since 2023: [FQDN 2024-02-14T14:50:26.590Z 08DC2D372B4C3DED].
func (f frontEnd) Bracket(now time.Time) string {
	return "[" + f.FQDN() + " " + now.UTC().Format("2006-01-02T15:04:05.000Z") + " " + sessionHex() + "]"
}

// sessionHex is the 16 upper-case hex digits Exchange appends to SMTP banners and errors.
func sessionHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "08DC" + strings.ToUpper(hex.EncodeToString(b[:]))
}
