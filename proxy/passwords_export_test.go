package proxy

// PasswordDerivations is how many argon2id derivations s's password checks have run.
func PasswordDerivations(s *Server) int64 { return s.verifier.derivations.Load() }
