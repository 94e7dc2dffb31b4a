package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/store"
)

// go-redis logs its connection failures to stderr on its own; in the CLI every such failure reaches
// the user once, as the token store's error (with what to check), so its own lines are dropped.
func init() { goredis.SetLogger(&logging.VoidLogger{}) }

// storePrompt asks for the token store's passphrase on the terminal, when interactive and stdin
// is one; nil otherwise (store.Open then says which settings would give it).
func (a *app) storePrompt(c config.Store, interactive bool) func() ([]byte, error) {
	f, ok := a.stdin.(*os.File)
	if !interactive || !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return func() ([]byte, error) {
		fmt.Fprintf(a.stderr, "Passphrase for the token store %s: ", storeWhere(c))
		p, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		return p, err
	}
}

// storeWhere says where a [store] keeps the tokens, for people; never a credential.
func storeWhere(c config.Store) string {
	switch c.Backend {
	case config.BackendKeyring:
		return "the OS keyring"
	case config.BackendRedis:
		prefix := c.Prefix
		if prefix == "" {
			prefix = "mailoauth:"
		}
		return fmt.Sprintf("redis %s (prefix %s)", redactURL(c.URL), prefix)
	}
	return "file " + c.Path
}

// redactURL drops any user information from a URL (the configuration refuses a password there,
// but a message is no place to find out).
func redactURL(u string) string {
	if i, j := strings.Index(u, "://"), strings.LastIndex(u, "@"); i >= 0 && j > i {
		return u[:i+3] + u[j+1:]
	}
	return u
}

func (a *app) storeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Manage the token store",
		Args:  args(cobra.NoArgs),
	}
	cmd.AddCommand(a.storeMigrateCommand())
	return cmd
}

func (a *app) storeMigrateCommand() *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "migrate --from BACKEND --to BACKEND",
		Short: "Copy every token from one store backend to another",
		Long: `Copy every entry (each account's and each user's tokens) from one token store backend to
another, both described by the configuration's [store]: file at its path, redis at its url, keyring.
Both use [store]'s passphrase or key. An entry the destination holds is replaced; the source is left
as it is (remove it once nothing uses it). To move to Redis, set backend = "redis" and url (keeping
path), run mailoauth store migrate --from file --to redis, and the fleet then shares the tokens;
back to a file: mailoauth store migrate --from redis --to file, then backend = "file".`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			for _, b := range []string{from, to} {
				if b != config.BackendFile && b != config.BackendRedis && b != config.BackendKeyring {
					return usagef("--from and --to take file, redis or keyring, not %q", b)
				}
			}
			if from == to {
				return usagef("--from and --to are both %s; name two backends", from)
			}
			if (from == config.BackendRedis || to == config.BackendRedis) && cfg.Store.URL == "" {
				return usagef(`[store] has no url: set backend = "redis" and url to name the Redis to migrate %s`, map[bool]string{true: "from", false: "to"}[from == config.BackendRedis])
			}
			n, err := migrate(cmd.Context(), cfg.Store, from, to, a.storePrompt(cfg.Store, true))
			if err != nil {
				return err
			}
			src, dst := cfg.Store, cfg.Store
			src.Backend, dst.Backend = from, to
			fmt.Fprintf(a.stdout, "Copied %d entries from %s to %s.\n", n, storeWhere(src), storeWhere(dst))
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the backend to copy from: file, redis or keyring")
	cmd.Flags().StringVar(&to, "to", "", "the backend to copy to: file, redis or keyring")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// migrate copies every entry of c's from backend into its to backend and returns how many.
func migrate(ctx context.Context, c config.Store, from, to string, prompt func() ([]byte, error)) (n int, err error) {
	c.Backend = from
	src, err := store.Open(c, prompt)
	if err != nil {
		return 0, err
	}
	defer func() { _ = closeStore(src) }()
	c.Backend = to
	dst, err := store.Open(c, prompt)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := closeStore(dst); err == nil && cerr != nil {
			n, err = 0, cerr
		}
	}()
	keys, err := src.Keys(ctx)
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		v, err := src.Load(ctx, k)
		if err != nil {
			return 0, err
		}
		if v == nil {
			continue
		}
		if err := dst.Update(ctx, k, func([]byte) ([]byte, error) { return v, nil }); err != nil {
			return 0, fmt.Errorf("write %s to %s: %w", k, to, err)
		}
		n++
	}
	return n, nil
}

// closeStore closes a store that holds connections (the Redis one), writing what it queued; the
// error says what it could not write.
func closeStore(st store.Store) error {
	if c, ok := st.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// openStore opens the token store of c for a command; run closes it when the command ends, so
// that a Redis store writes what it queued during an outage (or says that it could not).
func (a *app) openStore(c config.Store, prompt func() ([]byte, error)) (store.Store, error) {
	st, err := store.Open(c, prompt)
	if err == nil {
		a.stores = append(a.stores, st)
	}
	return st, err
}

// closeStores closes the stores the command opened, warning on stderr of token updates lost.
func (a *app) closeStores() {
	for _, st := range a.stores {
		if err := closeStore(st); err != nil {
			fmt.Fprintln(a.stderr, "mailoauth: warning: "+oneLine(err))
		}
	}
	a.stores = nil
}

// storeReady is the proxy's readiness check of its token store: a store that talks to a server
// (Redis) must reach it; a local one always can.
func storeReady(st store.Store) func(context.Context) error {
	if c, ok := st.(interface{ Check(context.Context) error }); ok {
		return c.Check
	}
	return nil
}
