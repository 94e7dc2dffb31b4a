//go:build !unix

package loadtest

import "time"

// CPUTime is the CPU time this process has used: 0 here, where there is no getrusage (Windows), as
// the other measures are 0 where /proc is missing.
func CPUTime() time.Duration { return 0 }
