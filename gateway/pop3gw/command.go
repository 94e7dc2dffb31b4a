package pop3gw

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
)

const (
	// maxLine bounds a command line, CRLF included. RFC 2449 allows 255 octets; twice that leaves
	// room for lenient programs.
	maxLine = 512
	// maxDiscard bounds what is read of one over-long line before the session ends: a program that
	// sends no line end is not talking POP3.
	maxDiscard = 64 << 10
	// maxBad is how many bad commands a session may send; the next one ends it.
	maxBad = 25
)

var (
	errLineTooLong = errors.New("command line too long")
	errFlood       = errors.New("pop3gw: the program sent an over-long line without a line end")
)

// command is a parsed command line: the keyword in upper case and its arguments.
type command struct {
	name string
	args []string
}

// readLine returns the next line without its line end, in buf (whose capacity is maxLine).
// An over-long line is read to its end (at most maxDiscard octets) and reported as errLineTooLong.
func readLine(r *bufio.Reader, buf []byte) ([]byte, error) {
	line := buf[:0]
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > maxLine {
			return nil, discardLine(r, len(line)+len(chunk), err)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}

// discardLine reads the rest of an over-long line, of which read octets were read so far.
func discardLine(r *bufio.Reader, read int, err error) error {
	for errors.Is(err, bufio.ErrBufferFull) {
		if read > maxDiscard {
			return errFlood
		}
		var chunk []byte
		chunk, err = r.ReadSlice('\n')
		read += len(chunk)
	}
	if err != nil {
		return err
	}
	return errLineTooLong
}

// parseCommand splits a command line into its keyword and arguments (RFC 1939: separated by single
// spaces; runs of spaces and tabs are taken as one).
func parseCommand(line []byte) command {
	f := strings.Fields(string(line))
	if len(f) == 0 {
		return command{}
	}
	return command{name: strings.ToUpper(f[0]), args: f[1:]}
}
