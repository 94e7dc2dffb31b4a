package console

import (
	"strconv"
	"testing"
	"time"
)

// TestLimiterFloodKeepsDelays: a flood of failures from more addresses than the limiter's table
// holds does not wipe the delay of a source that failed before it.
func TestLimiterFloodKeepsDelays(t *testing.T) {
	l := newLimiter(time.Minute, time.Minute)
	fail := func(src string) {
		if wait, release := l.enter(src); wait == 0 {
			release(false)
		}
	}
	fail("192.0.2.1")
	for i := range maxSources + 1 {
		fail("10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255))
	}
	if wait, _ := l.enter("192.0.2.1"); wait <= 0 {
		t.Error("after a flood of other addresses, a source that just failed may try again at once")
	}
	if len(l.sources) > maxSources+1 { // and the entry new sources share
		t.Errorf("the table holds %d sources, over %d", len(l.sources), maxSources+1)
	}
}

// TestLimiterIPv6Prefix: IPv6 addresses of one /64 are one source, since a host can pick any of them.
func TestLimiterIPv6Prefix(t *testing.T) {
	l := newLimiter(time.Minute, time.Minute)
	_, release := l.enter("2001:db8:1:2::1")
	release(false)
	if wait, _ := l.enter("2001:db8:1:2:ffff::9"); wait <= 0 {
		t.Error("another address of the same /64 may try again at once after a failure")
	}
	if wait, _ := l.enter("2001:db8:1:3::1"); wait != 0 {
		t.Errorf("another /64 waits %v, want 0", wait)
	}
}
