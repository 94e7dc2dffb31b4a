package events

// Waiting reports how many readers are blocked in l.Wait since the last Add.
func Waiting(l *Log) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting
}
