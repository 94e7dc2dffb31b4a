package auth

// UserClients is how many signed-in users' MSAL clients a holds in memory (tests only).
func UserClients(a *Account) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.users.order.Len()
}

// SetUserClientLimit changes how many users' MSAL clients a keeps (tests only).
func SetUserClientLimit(a *Account, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.users.limit = n
}

// HotTokens is how many tokens a holds on its hot path (tests only).
func HotTokens(a *Account) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.hot)
}
