// Package atomicfile writes files so that a reader, or a process that starts after a crash, sees the
// old content or the new, never a mix: write a temporary file in the same directory, fsync it, rename
// it over the target, fsync the directory. It never follows the target if it is a symlink to elsewhere
// and never widens permissions: the file is created with the mode given.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tempPattern names WriteFile's temporary files: os.CreateTemp puts decimal digits for the star.
func tempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// WriteFile replaces path with data, atomically, with permissions perm.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// The rename is durable only once the directory entry is on disk.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// RemoveTemps removes the temporary files that WriteFile calls for path left behind when their
// process was killed before the rename; nothing else removes them. Call it only while holding the lock
// that keeps every other writer of path out, or it can remove a temporary file a live writer is about
// to rename. It returns how many it removed.
func RemoveTemps(path string) (int, error) {
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("clean %s: %w", dir, err)
	}
	prefix, _, _ := strings.Cut(tempPattern(path), "*")
	n := 0
	for _, e := range ents {
		digits, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || digits == "" || strings.Trim(digits, "0123456789") != "" || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !os.IsNotExist(err) {
			return n, fmt.Errorf("clean %s: %w", dir, err)
		}
		n++
	}
	return n, nil
}
