package proxy

// PasswordDerivations is how many argon2id derivations s's password checks have run.
func PasswordDerivations(s *Server) int64 { return s.verifier.derivations.Load() }

// HoldPasswordChecks takes every CPU's turn for password checks, as a flood of other checks would:
// until release, every login that needs a derivation queues.
func HoldPasswordChecks(s *Server) (release func()) {
	for range cap(s.verifier.sem) {
		s.verifier.sem <- struct{}{}
	}
	return func() {
		for range cap(s.verifier.sem) {
			<-s.verifier.sem
		}
	}
}

// HookDerivations makes every argon2id derivation of s call hook with the password it checks
// before it begins, and what hook returns once it is done. Call it before s checks any password.
func HookDerivations(s *Server, hook func(password string) (done func())) {
	derive := s.verifier.derive
	s.verifier.derive = func(hash, password string) ([]byte, []byte, error) {
		defer hook(password)()
		return derive(hash, password)
	}
}
