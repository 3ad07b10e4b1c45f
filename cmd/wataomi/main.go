// Command wataomi is the one binary of PRODUCT §3.6: the API server and the operator CLI.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/engine"
	"github.com/wataomi/wataomi/openapi"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/server"
	"github.com/wataomi/wataomi/store"
)

const usage = `usage: wataomi [command]

  serve                          run the API (default)
  migrate up|down|status         apply, roll back one, or list migrations
  migrate create NAME            write a new migration pair under store/migrations
  users create --email E --name N --role R
  users set-role --email E --role R [--force]
                                 break-glass role change (refuses to demote the last active
                                 super_admin unless --force); revokes the user's sessions
  users relink --email E         clear the Casdoor link so the next sign-in with that email links again
                                 pre-provision a user (the bootstrap path for the first super_admin)
  token --user EMAIL [--role R] [--ttl 1h] [--refresh]
                                 mint an access token (refused in production); --refresh also starts
                                 a session and prints {access_token, refresh_token} as JSON
  seed [--force]                 insert the missing built-in templates; --force also resets
                                 the system templates to the shipped definitions
  config check                   print the effective configuration, secrets redacted
  openapi [--format yaml|json]   print the embedded contract
  health [--url URL]             probe /health of a running server (for container HEALTHCHECKs)
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wataomi:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "migrate":
		return migrate(args, stdout)
	case "users":
		return users(args, stdout, stderr)
	case "token":
		return token(args, stdout, stderr)
	case "seed":
		return seedCmd(args, stdout, stderr)
	case "config":
		return configCmd(args, stdout)
	case "openapi":
		return openapiCmd(args, stdout, stderr)
	case "health":
		return healthCmd(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// newFlagSet returns a flag set that reports parse errors and -h to stderr (the
// writer run was given, not os.Stderr) and returns them instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func loadConfig() (*config.Config, error) {
	cfg, err := config.Load(config.LoadOptions{})
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

func newLogger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

func openDB(ctx context.Context, cfg *config.Config) (*store.DB, error) {
	return store.Open(ctx, cfg.DatabaseDialect(), cfg.DatabaseDSN(), cfg.DBMaxConns)
}

// openMigrated opens the database for an operator command and, where RUN_MIGRATIONS_ON_START holds
// (not in production, where `migrate up` is a release step), applies pending migrations first, so
// the first command on a fresh install just works.
func openMigrated(ctx context.Context, cfg *config.Config) (*store.DB, error) {
	db, err := openDB(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.RunMigrationsOnStart {
		if err := store.MigrateUp(ctx, db); err != nil {
			db.Close()
			return nil, fmt.Errorf("migrations: %w", err)
		}
	}
	return db, nil
}

func serve(args []string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	db, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := seedOnStart(ctx, cfg, db, log); err != nil {
		return err
	}
	var rdb *redis.Client
	shared := auth.NewMemoryShared()
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return errors.New("REDIS_URL cannot be parsed")
		}
		rdb = redis.NewClient(opt)
		defer rdb.Close()
		shared = auth.NewRedisShared(rdb)
	} else {
		log.Info("REDIS_URL is not set: shared state is in-process, so this server runs as a single replica")
	}
	tokens, err := auth.TokensFromConfig(cfg)
	if err != nil {
		return err
	}
	casdoor, err := auth.CasdoorFromConfig(cfg)
	if err != nil {
		return fmt.Errorf("casdoor: %w", err)
	}
	if casdoor == nil {
		log.Warn("Casdoor is not configured: the sign-in endpoints answer 503; mint tokens with 'wataomi token'")
	}
	eng, err := engine.FromConfig(ctx, cfg, db, rdb, log, engine.Options{})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	srv, err := server.New(server.Deps{Config: cfg, DB: db, Redis: rdb, Tokens: tokens, Logger: log, Shared: shared, Casdoor: casdoor, Engine: eng})
	if err != nil {
		return err
	}
	if err := eng.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	defer eng.Bus().Close()
	hs := &http.Server{Addr: cfg.ListenAddr(), Handler: srv.Echo, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	log.Info("listening", "addr", cfg.ListenAddr(), "database", cfg.DatabaseDialect())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	srv.Drain()
	log.Info("shutting down", "timeout_s", cfg.ShutdownTimeoutSeconds)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout())
	defer cancel()
	herr := hs.Shutdown(sctx)
	// Running jobs get the rest of the timeout; what is still running is cancelled and resumed by another worker.
	if err := eng.Stop(sctx); err != nil {
		log.Warn("engine stop", "error", err.Error())
	}
	return herr
}

func migrate(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("migrate needs up, down, status or create NAME")
	}
	if args[0] == "create" {
		if len(args) != 2 {
			return errors.New("migrate create needs a NAME")
		}
		files, err := store.CreateMigration("store/migrations", args[1])
		for _, f := range files {
			fmt.Fprintln(stdout, "created", f)
		}
		return err
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	switch args[0] {
	case "up":
		return store.MigrateUp(ctx, db)
	case "down":
		return store.MigrateDown(ctx, db)
	case "status":
		return store.MigrationStatus(ctx, db, stdout)
	}
	return fmt.Errorf("unknown migrate command %q", args[0])
}

func users(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "set-role":
			return usersSetRole(args[1:], stdout, stderr)
		case "relink":
			return usersRelink(args[1:], stdout, stderr)
		}
	}
	if len(args) == 0 || args[0] != "create" {
		return errors.New("users needs: create --email E --name N --role R | set-role --email E --role R [--force] | relink --email E")
	}
	fs := newFlagSet("users create", stderr)
	email := fs.String("email", "", "email (required)")
	name := fs.String("name", "", "display name (required)")
	role := fs.String("role", "user", "role: "+roleNames())
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	*email, *name = strings.TrimSpace(*email), strings.TrimSpace(*name)
	if *email == "" || *name == "" {
		return errors.New("--email and --name are required")
	}
	if _, ok := rbac.ParseRole(*role); !ok {
		return fmt.Errorf("--role must be one of %s", roleNames())
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	u := &store.User{Email: *email, Name: *name, Role: *role, IsActive: true}
	if err := store.SaveUser(ctx, db.DB, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("a user with the email %s already exists", *email)
		}
		return err
	}
	fmt.Fprintf(stdout, "created user %d %s (%s)\n", u.ID, u.Email, u.Role)
	return nil
}

func roleNames() string {
	names := make([]string, 0, 6)
	for _, r := range rbac.AllRoles() {
		names = append(names, string(r))
	}
	return strings.Join(names, ", ")
}

func token(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token", stderr)
	email := fs.String("user", "", "the user's email (required)")
	role := fs.String("role", "", "create the user with this role when missing")
	ttl := fs.Duration("ttl", 0, "lifetime (default ACCESS_TOKEN_EXPIRE_MINUTES)")
	withRefresh := fs.Bool("refresh", false, "also start a session: print JSON {access_token, refresh_token}")
	if err := fs.Parse(args); err != nil {
		return err
	}
	*email = strings.TrimSpace(*email)
	if *email == "" {
		return errors.New("--user is required")
	}
	if *role != "" {
		if _, ok := rbac.ParseRole(*role); !ok {
			return fmt.Errorf("--role must be one of %s", roleNames())
		}
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	if cfg.IsProduction() {
		return errors.New("token refuses to run when APP_ENV=production")
	}
	ctx := context.Background()
	db, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	u, err := store.GetUserByEmail(ctx, db.DB, *email)
	switch {
	case errors.Is(err, store.ErrNotFound) && *role != "":
		u = &store.User{Email: *email, Name: strings.Split(*email, "@")[0], Role: *role, IsActive: true}
		if err := store.SaveUser(ctx, db.DB, u); err != nil {
			return err
		}
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no user with the email %s (create one with 'wataomi users create' or pass --role)", *email)
	case err != nil:
		return err
	}
	tokens, err := auth.TokensFromConfig(cfg)
	if err != nil {
		return err
	}
	if !*withRefresh {
		tok, _, err := tokens.Issue(u.ID, u.Role, "", *ttl)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok)
		return nil
	}
	// A session as a sign-in would start it: a refresh family whose first token the API rotates.
	family := auth.NewFamilyID()
	refresh, hash := auth.NewRefreshToken()
	now := store.Now()
	rt := &store.RefreshToken{FamilyID: family, UserID: u.ID, TokenHash: hash, IssuedAt: now, ExpiresAt: now.Add(cfg.RefreshTokenTTL())}
	if err := store.CreateRefreshToken(ctx, db.DB, rt); err != nil {
		return err
	}
	tok, _, err := tokens.Issue(u.ID, u.Role, family, *ttl)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]string{"access_token": tok, "refresh_token": refresh})
}

// seedOnStart inserts the missing built-in templates when SEED_ON_START holds (the default), so a
// fresh install has its catalogue. Existing rows are left alone: resetting them is `seed --force`.
func seedOnStart(ctx context.Context, cfg *config.Config, db *store.DB, log *slog.Logger) error {
	if !cfg.SeedOnStart {
		return nil
	}
	res, err := server.SeedTemplates(ctx, db, false)
	if err != nil {
		return fmt.Errorf("seed (SEED_ON_START): %w", err)
	}
	if res.Inserted > 0 {
		log.Info("seeded the built-in templates", "inserted", res.Inserted)
	}
	return nil
}

// seedCmd is `wataomi seed [--force]` (PRODUCT §3.6): the same seed as POST /templates/seed, audited
// with the system as the actor.
func seedCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("seed", stderr)
	force := fs.Bool("force", false, "also reset the system templates to the shipped definitions")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("seed takes no arguments, got %q", fs.Args())
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := server.SeedTemplates(ctx, db, *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "templates: %d inserted, %d updated\n", res.Inserted, res.Updated)
	return nil
}

func configCmd(args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "check" {
		return errors.New("config needs: check")
	}
	cfg, err := config.Load(config.LoadOptions{})
	if cfg != nil {
		if werr := cfg.WriteCheck(stdout); werr != nil {
			return werr
		}
		for _, w := range cfg.Warnings() {
			fmt.Fprintln(stdout, "warning:", w)
		}
	}
	if err != nil {
		return fmt.Errorf("configuration is invalid: %w", err)
	}
	fmt.Fprintln(stdout, "configuration OK")
	return nil
}

func openapiCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("openapi", stderr)
	format := fs.String("format", "yaml", "yaml or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch *format {
	case "yaml":
		_, err := stdout.Write(openapi.BundledYAML)
		return err
	case "json":
		_, err := stdout.Write(openapi.BundledJSON)
		return err
	}
	return errors.New("--format must be yaml or json")
}

// healthCmd probes a running server's liveness endpoint, so a distroless image needs no curl.
func healthCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "the /health URL (default: http://127.0.0.1<HTTP_ADDR port>/health)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		addr := os.Getenv("HTTP_ADDR")
		if addr == "" {
			addr = ":" + os.Getenv("PORT")
		}
		if addr == ":" {
			addr = ":8000"
		}
		if strings.HasPrefix(addr, ":") {
			addr = "127.0.0.1" + addr
		}
		*url = "http://" + addr + "/health"
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(*url)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %d", *url, resp.StatusCode)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// usersSetRole is the break-glass role change of PRODUCT §3.6. It revokes the user's refresh families
// in the database; their access tokens lapse within ACCESS_TOKEN_EXPIRE_MINUTES, and authorization
// already reads the new role on every request.
func usersSetRole(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("users set-role", stderr)
	email := fs.String("email", "", "the user's email (required)")
	role := fs.String("role", "", "the new role: "+roleNames())
	force := fs.Bool("force", false, "allow demoting the last active super_admin")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if strings.TrimSpace(*email) == "" {
		return errors.New("--email is required")
	}
	if _, ok := rbac.ParseRole(*role); !ok {
		return fmt.Errorf("--role must be one of %s", roleNames())
	}
	return withUser(strings.TrimSpace(*email), func(ctx context.Context, tx *gorm.DB, u *store.User) error {
		if u.Role == string(rbac.SuperAdmin) && *role != string(rbac.SuperAdmin) && u.IsActive && !*force {
			n, err := store.CountActiveSuperAdmins(ctx, tx)
			if err != nil {
				return err
			}
			if n <= 1 {
				return errors.New("this is the last active super_admin; pass --force to demote anyway")
			}
		}
		before := u.Role
		u.Role = *role
		if err := store.SaveUser(ctx, tx, u); err != nil {
			return err
		}
		if _, err := store.RevokeUserFamilies(ctx, tx, u.ID, store.Now()); err != nil {
			return err
		}
		if err := cliAudit(ctx, tx, "user.role_changed", u.ID, []string{"role"}, map[string]any{"role": before}, map[string]any{"role": *role}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s -> %s\n", u.Email, before, u.Role)
		return nil
	})
}

// usersRelink clears external_id (PRODUCT §3.6): a Casdoor user re-created with a new subject links
// to this row again at the next sign-in.
func usersRelink(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("users relink", stderr)
	email := fs.String("email", "", "the user's email (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if strings.TrimSpace(*email) == "" {
		return errors.New("--email is required")
	}
	return withUser(strings.TrimSpace(*email), func(ctx context.Context, tx *gorm.DB, u *store.User) error {
		u.ExternalID = nil
		if err := store.SaveUser(ctx, tx, u); err != nil {
			return err
		}
		if err := cliAudit(ctx, tx, "user.relinked", u.ID, []string{"external_id"}, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s will link to the next Casdoor sign-in with this email\n", u.Email)
		return nil
	})
}

// withUser runs fn on the user with that email inside one transaction.
func withUser(email string, fn func(ctx context.Context, tx *gorm.DB, u *store.User) error) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Tx(ctx, func(tx *gorm.DB) error {
		if err := store.LockUserAdmin(ctx, tx); err != nil {
			return err
		}
		u, err := store.GetUserByEmail(ctx, tx, email)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no user with the email %s", email)
		}
		if err != nil {
			return err
		}
		return fn(ctx, tx, u)
	})
}

// cliAudit records an operator's change; the actor is the system (the CLI has no signed-in user).
func cliAudit(ctx context.Context, tx *gorm.DB, action string, userID int64, fields []string, before, after map[string]any) error {
	changes, err := store.AuditChanges(fields, before, after)
	if err != nil {
		return err
	}
	return store.InsertAudit(ctx, tx, &store.AuditLog{Action: action, ActorType: store.ActorSystem, ActorDisplay: "cli",
		ResourceType: "user", ResourceID: &userID, Changes: changes})
}
