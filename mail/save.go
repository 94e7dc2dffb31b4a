package mail

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameBytes keeps saved names inside every common file system's 255-byte limit, with room for " (NN)".
const maxNameBytes = 200

// safeName turns an attachment's name into a plain file name: path components (either slash) and
// "." / ".." are dropped, control characters removed, leading dots and spaces trimmed (no hidden files),
// the length bounded on a character boundary; non-ASCII letters are kept. An empty result becomes
// "attachment".
func safeName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || r == 0 {
			return -1
		}
		return r
	}, name)
	name = strings.TrimLeft(name, ". ")
	name = strings.TrimRight(name, " ")
	for len(name) > maxNameBytes {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." || name == ".." {
		return "attachment"
	}
	return name
}

// SaveAttachments writes every attachment of msg into dir under a plain file name made from its Name
// (no directories, no leading dot, no control characters), never overwriting a file: a name already taken becomes "name (1).ext", "name (2).ext" and so on. Files are created
// through an os.Root on dir, so neither a name nor a symbolic link in dir can make them land outside
// it. Files are private (0600): they come from someone else's mail. It returns the paths written.
func SaveAttachments(msg *Message, dir string) ([]string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot save attachments in %s: %w", dir, errors.Unwrap(err))
	}
	defer root.Close()
	var saved []string
	for i, a := range msg.Attachments {
		name, err := saveOne(root, safeName(a.Name), a.Data)
		if err != nil {
			return saved, fmt.Errorf("cannot save attachment %d (%q) in %s: %w", i+1, a.Name, dir, err)
		}
		saved = append(saved, filepath.Join(dir, name))
	}
	return saved, nil
}

func saveOne(root *os.Root, name string, data []byte) (string, error) {
	if !filepath.IsLocal(name) || strings.ContainsRune(name, filepath.Separator) {
		return "", fmt.Errorf("the name %q would leave the directory", name)
	}
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	if stem == "" { // ".tar" after trimming cannot happen (leading dots are gone), but be safe
		stem, ext = name, ""
	}
	for n := 0; n < 10000; n++ {
		candidate := name
		if n > 0 {
			candidate = fmt.Sprintf("%s (%d)%s", stem, n, ext)
		}
		f, err := root.OpenFile(candidate, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			root.Remove(candidate)
			return "", err
		}
		if err := f.Close(); err != nil {
			root.Remove(candidate)
			return "", err
		}
		return candidate, nil
	}
	return "", fmt.Errorf("every name from %q to %q (9999) is taken", name, stem+" (9999)"+ext)
}
