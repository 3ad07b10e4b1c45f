package main

// These tests drive run() in-process. They change the working directory and the
// environment (t.Chdir, t.Setenv), so none of them may run in parallel.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/auth/casdoortest"
	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/integration"
	"github.com/wataomi/wataomi/openapi"
	"github.com/wataomi/wataomi/secretbox"
	"github.com/wataomi/wataomi/store"
)

// testSecret is 40 bytes: long enough for production, not a published example.
const testSecret = "cli-test-secret-0123456789-abcdefghijklm"

// setupCLI moves the test into a fresh directory and points the configuration
// at a SQLite file inside it. It returns the directory.
func setupCLI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir) // restored when the test ends
	t.Setenv("APP_ENV", "test")
	t.Setenv("SECRET_KEY", testSecret)
	t.Setenv("DATABASE_URL", "sqlite:"+filepath.Join(dir, "w.db"))
	// Variables that would change what the commands see, if the developer's
	// shell has them.
	for _, k := range []string{"REDIS_URL", "CONFIG_FILE", "ACCESS_TOKEN_EXPIRE_MINUTES", "JWT_ISSUER", "JWT_AUDIENCE", "ALGORITHM", "LOG_LEVEL", "LOG_FORMAT", "API_V1_STR"} {
		t.Setenv(k, "") // registers the restore
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cli runs the command and returns its stdout, stderr and error.
func cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// mustCLI runs the command and fails the test on an error.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := cli(t, args...)
	if err != nil {
		t.Fatalf("wataomi %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// wantCLIError runs the command, requires an error and returns it.
func wantCLIError(t *testing.T, args ...string) error {
	t.Helper()
	out, _, err := cli(t, args...)
	if err == nil {
		t.Fatalf("wataomi %s succeeded, want an error; stdout: %s", strings.Join(args, " "), out)
	}
	return err
}

func loadTestConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.LoadOptions{})
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	return cfg
}

// openTestDB opens the database the CLI uses, migrated.
func openTestDB(t *testing.T) *store.DB {
	t.Helper()
	cfg := loadTestConfig(t)
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.DatabaseDialect(), cfg.DatabaseDSN(), cfg.DBMaxConns)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := store.MigrateUp(ctx, db); err != nil {
		t.Fatalf("MigrateUp: %v", err)
	}
	return db
}

func findUser(t *testing.T, email string) (store.User, bool) {
	t.Helper()
	db := openTestDB(t)
	var users []store.User
	if err := db.Where("lower(email) = lower(?)", email).Find(&users).Error; err != nil {
		t.Fatalf("find user: %v", err)
	}
	switch len(users) {
	case 0:
		return store.User{}, false
	case 1:
		return users[0], true
	}
	t.Fatalf("%d users with the email %s", len(users), email)
	return store.User{}, false
}

func countUsers(t *testing.T) int64 {
	t.Helper()
	var n int64
	if err := openTestDB(t).Model(&store.User{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func verifier(t *testing.T) *auth.Tokens {
	t.Helper()
	cfg := loadTestConfig(t)
	if string(cfg.SecretKey) != testSecret {
		t.Fatalf("config.Load did not pick up SECRET_KEY from the environment")
	}
	tokens, err := auth.TokensFromConfig(cfg)
	if err != nil {
		t.Fatalf("auth.NewTokens: %v", err)
	}
	return tokens
}

// ---------------------------------------------------------------------------
// users

func TestUsersCreate(t *testing.T) {
	setupCLI(t)

	out := mustCLI(t, "users", "create", "--email", "ada@example.com", "--name", "Ada Lovelace", "--role", "editor")
	if !regexp.MustCompile(`^created user \d+ ada@example\.com \(editor\)\n$`).MatchString(out) {
		t.Errorf("stdout = %q", out)
	}
	u, ok := findUser(t, "ada@example.com")
	if !ok {
		t.Fatal("the user was not created")
	}
	if u.Name != "Ada Lovelace" || u.Role != "editor" || !u.IsActive || u.ExternalID != nil {
		t.Errorf("user = %+v", u)
	}
	if !strings.Contains(u.SearchText, "ada") {
		t.Errorf("search_text = %q, want the name and email folded in", u.SearchText)
	}
	if u.CreatedAt.IsZero() {
		t.Errorf("created_at is not set")
	}

	// The = form and a second user.
	mustCLI(t, "users", "create", "--email=bob@example.com", "--name=Bob", "--role=super_admin")
	if u, ok := findUser(t, "bob@example.com"); !ok || u.Role != "super_admin" {
		t.Errorf("bob = %+v, %v", u, ok)
	}

	t.Run("duplicate email", func(t *testing.T) {
		before := countUsers(t)
		for _, email := range []string{"ada@example.com", "ADA@Example.com", " ada@example.com "} {
			err := wantCLIError(t, "users", "create", "--email", email, "--name", "Other", "--role", "viewer")
			if !strings.Contains(err.Error(), "already exists") {
				t.Errorf("email %q: error %q does not say the user exists", email, err)
			}
		}
		if after := countUsers(t); after != before {
			t.Errorf("users: %d before, %d after", before, after)
		}
		if u, _ := findUser(t, "ada@example.com"); u.Role != "editor" || u.Name != "Ada Lovelace" {
			t.Errorf("the existing user changed: %+v", u)
		}
	})

	t.Run("bad role", func(t *testing.T) {
		for _, role := range []string{"boss", "Editor", "EDITOR", " editor", ""} {
			err := wantCLIError(t, "users", "create", "--email", "carol@example.com", "--name", "Carol", "--role", role)
			if !strings.Contains(err.Error(), "--role must be one of") {
				t.Errorf("role %q: error %q", role, err)
			}
		}
		if _, ok := findUser(t, "carol@example.com"); ok {
			t.Error("a user was created with a bad role")
		}
	})

	t.Run("missing flags", func(t *testing.T) {
		cases := [][]string{
			{"users"},
			{"users", "delete", "--email", "x@example.com"},
			{"users", "create"},
			{"users", "create", "--name", "Dan", "--role", "editor"},
			{"users", "create", "--email", "dan@example.com", "--role", "editor"},
			{"users", "create", "--email", "", "--name", "Dan"},
			{"users", "create", "--email", "  ", "--name", "Dan"},
			{"users", "create", "--email", "dan@example.com", "--name", "  ", "--role", "editor"},
			{"users", "create", "--email", "dan@example.com", "--name"},
			{"users", "create", "--email", "dan@example.com", "--name", "Dan", "--bogus"},
		}
		for _, args := range cases {
			wantCLIError(t, args...)
		}
		if _, ok := findUser(t, "dan@example.com"); ok {
			t.Error("a user was created without the required flags")
		}
	})

	t.Run("default role", func(t *testing.T) {
		mustCLI(t, "users", "create", "--email", "erin@example.com", "--name", "Erin")
		if u, ok := findUser(t, "erin@example.com"); !ok || u.Role != "user" {
			t.Errorf("erin = %+v, %v; want role user", u, ok)
		}
	})
}

// ---------------------------------------------------------------------------
// token

func TestToken(t *testing.T) {
	setupCLI(t)
	mustCLI(t, "users", "create", "--email", "ada@example.com", "--name", "Ada", "--role", "editor")
	ada, ok := findUser(t, "ada@example.com")
	if !ok {
		t.Fatal("setup: no user")
	}
	tokens := verifier(t)

	t.Run("existing user", func(t *testing.T) {
		out := mustCLI(t, "token", "--user", "ada@example.com")
		if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
			t.Errorf("stdout = %q, want the token on one line", out)
		}
		claims, err := tokens.Verify(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if claims.UserID != ada.ID || claims.Role != "editor" {
			t.Errorf("claims = %+v, want user %d editor", claims, ada.ID)
		}
		if ttl := claims.ExpiresAt.Sub(claims.IssuedAt); ttl != 30*time.Minute {
			t.Errorf("default lifetime %v, want ACCESS_TOKEN_EXPIRE_MINUTES (30m)", ttl)
		}
		if claims.JTI == "" || claims.SID == "" {
			t.Errorf("claims = %+v, want a jti and a sid", claims)
		}
	})

	t.Run("email is matched case-insensitively", func(t *testing.T) {
		out := mustCLI(t, "token", "--user", "ADA@Example.COM")
		claims, err := tokens.Verify(strings.TrimSpace(out))
		if err != nil || claims.UserID != ada.ID {
			t.Fatalf("claims %+v, err %v; want user %d", claims, err, ada.ID)
		}
	})

	t.Run("ttl", func(t *testing.T) {
		out := mustCLI(t, "token", "--user", "ada@example.com", "--ttl", "10m")
		claims, err := tokens.Verify(strings.TrimSpace(out))
		if err != nil {
			t.Fatal(err)
		}
		if ttl := claims.ExpiresAt.Sub(claims.IssuedAt); ttl != 10*time.Minute {
			t.Errorf("lifetime %v, want 10m", ttl)
		}
		wantCLIError(t, "token", "--user", "ada@example.com", "--ttl", "soon")
		wantCLIError(t, "token", "--user", "ada@example.com", "--ttl", "-1m")
	})

	t.Run("role of an existing user is not changed", func(t *testing.T) {
		out := mustCLI(t, "token", "--user", "ada@example.com", "--role", "viewer")
		claims, err := tokens.Verify(strings.TrimSpace(out))
		if err != nil {
			t.Fatal(err)
		}
		if claims.UserID != ada.ID || claims.Role != "editor" {
			t.Errorf("claims = %+v, want the stored role editor", claims)
		}
		if u, _ := findUser(t, "ada@example.com"); u.Role != "editor" {
			t.Errorf("role changed to %s", u.Role)
		}
	})

	t.Run("tokens are unique", func(t *testing.T) {
		a := mustCLI(t, "token", "--user", "ada@example.com")
		b := mustCLI(t, "token", "--user", "ada@example.com")
		if a == b {
			t.Error("two tokens are identical")
		}
	})

	t.Run("missing user with a role is created", func(t *testing.T) {
		before := countUsers(t)
		out := mustCLI(t, "token", "--user", "missing@x", "--role", "viewer")
		u, ok := findUser(t, "missing@x")
		if !ok {
			t.Fatal("the user was not created")
		}
		if u.Role != "viewer" || !u.IsActive || u.Name != "missing" {
			t.Errorf("user = %+v", u)
		}
		if countUsers(t) != before+1 {
			t.Errorf("user count went from %d to %d", before, countUsers(t))
		}
		claims, err := tokens.Verify(strings.TrimSpace(out))
		if err != nil {
			t.Fatal(err)
		}
		if claims.UserID != u.ID || claims.Role != "viewer" {
			t.Errorf("claims = %+v, want user %d viewer", claims, u.ID)
		}
		// A second run finds the user instead of creating it again.
		out = mustCLI(t, "token", "--user", "missing@x", "--role", "viewer")
		if claims, err := tokens.Verify(strings.TrimSpace(out)); err != nil || claims.UserID != u.ID {
			t.Errorf("second run: claims %+v, err %v", claims, err)
		}
		if countUsers(t) != before+1 {
			t.Errorf("the second run created another user")
		}
	})

	t.Run("surrounding spaces in --user are ignored", func(t *testing.T) {
		out := mustCLI(t, "token", "--user", "  ada@example.com ")
		if claims, err := tokens.Verify(strings.TrimSpace(out)); err != nil || claims.UserID != ada.ID {
			t.Fatalf("claims %+v, err %v; want user %d", claims, err, ada.ID)
		}
		mustCLI(t, "token", "--user", " spaced@x ", "--role", "viewer")
		if u, ok := findUser(t, "spaced@x"); !ok || u.Email != "spaced@x" || u.Name != "spaced" {
			t.Errorf("user = %+v, %v; want the email stored trimmed", u, ok)
		}
	})

	t.Run("missing user without a role", func(t *testing.T) {
		err := wantCLIError(t, "token", "--user", "nobody@example.com")
		if !strings.Contains(err.Error(), "no user") {
			t.Errorf("error %q", err)
		}
		if _, ok := findUser(t, "nobody@example.com"); ok {
			t.Error("a user was created without --role")
		}
	})

	t.Run("bad role", func(t *testing.T) {
		for _, args := range [][]string{
			{"token", "--user", "nobody@example.com", "--role", "boss"},
			{"token", "--user", "ada@example.com", "--role", "boss"},
		} {
			err := wantCLIError(t, args...)
			if !strings.Contains(err.Error(), "--role must be one of") {
				t.Errorf("%v: error %q", args, err)
			}
		}
		if _, ok := findUser(t, "nobody@example.com"); ok {
			t.Error("a user was created with a bad role")
		}
	})

	t.Run("missing --user", func(t *testing.T) {
		wantCLIError(t, "token")
		wantCLIError(t, "token", "--role", "viewer")
		wantCLIError(t, "token", "--user")
		wantCLIError(t, "token", "--user", "   ")
		wantCLIError(t, "token", "--user", "ada@example.com", "--bogus")
	})

	t.Run("the token is signed with SECRET_KEY", func(t *testing.T) {
		out := mustCLI(t, "token", "--user", "ada@example.com")
		other, err := auth.NewTokens(auth.TokenConfig{Secret: []byte(strings.Repeat("z", 40)), Issuer: "wataomi-api", Audience: "wataomi-web", TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Verify(strings.TrimSpace(out)); err == nil {
			t.Error("a verifier with another secret accepted the token")
		}
	})
}

func TestTokenRefusedInProduction(t *testing.T) {
	dir := setupCLI(t)
	t.Setenv("APP_ENV", "production")
	t.Setenv("SECRET_KEY", "prod-strong-secret-"+strings.Repeat("q7", 16))
	t.Setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
	t.Setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	t.Setenv("PUBLIC_BASE_URL", "https://api.example.com")
	t.Setenv("ENCRYPTION_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	t.Setenv("MEDIA_STORAGE", "local") // production refuses to guess the media driver
	fake := casdoortest.New(t)
	t.Setenv("CASDOOR_ENDPOINT", fake.URL)
	t.Setenv("CASDOOR_CLIENT_ID", fake.ClientID)
	t.Setenv("CASDOOR_CLIENT_SECRET", fake.ClientSecret)
	t.Setenv("CASDOOR_CERTIFICATE", fake.CertificatePEM())
	if _, err := config.Load(config.LoadOptions{}); err != nil {
		t.Fatalf("the production environment of this test must be valid: %v", err)
	}
	for _, args := range [][]string{
		{"token", "--user", "ada@example.com"},
		{"token", "--user", "missing@x", "--role", "viewer"},
	} {
		out, _, err := cli(t, args...)
		if err == nil {
			t.Fatalf("%v succeeded in production; stdout %q", args, out)
		}
		t.Logf("%v: %v", args, err)
		if out != "" {
			t.Errorf("%v printed %q in production", args, out)
		}
		if !strings.Contains(err.Error(), "APP_ENV=production") {
			t.Errorf("%v: error %q, want the production refusal (before connecting)", args, err)
		}
	}
	// Nothing was written next to the binary either (no SQLite fallback, no key file).
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the working directory gained %v", names)
	}
}

// ---------------------------------------------------------------------------
// migrate

var statusLine = regexp.MustCompile(`(?m)^(\d+)\s+(applied|pending)\s+(\S+(?: \S+)?)\s+(\S+\.sql)$`)

// migrationStates parses `migrate status` into version → state.
func migrationStates(t *testing.T, out string) map[string]string {
	t.Helper()
	if !strings.HasPrefix(out, "VERSION") {
		t.Errorf("status output has no header: %q", out)
	}
	states := map[string]string{}
	for _, m := range statusLine.FindAllStringSubmatch(out, -1) {
		states[m[1]] = m[2]
		if m[2] == "pending" && m[3] != "-" {
			t.Errorf("pending migration %s has an applied-at %q", m[1], m[3])
		}
	}
	if len(states) == 0 {
		t.Fatalf("no migrations in the status output: %q", out)
	}
	return states
}

func TestMigrate(t *testing.T) {
	dir := setupCLI(t)

	states := migrationStates(t, mustCLI(t, "migrate", "status"))
	if states["1"] != "pending" {
		t.Errorf("before up: version 1 is %q, want pending", states["1"])
	}

	if out := mustCLI(t, "migrate", "up"); out != "" {
		t.Errorf("migrate up printed %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "w.db")); err != nil {
		t.Errorf("the database file is missing: %v", err)
	}
	out := mustCLI(t, "migrate", "status")
	states = migrationStates(t, out)
	if states["1"] != "applied" {
		t.Errorf("after up: version 1 is %q, want applied\n%s", states["1"], out)
	}
	for v, s := range states {
		if s != "applied" {
			t.Errorf("after up: version %s is %s", v, s)
		}
	}
	if !regexp.MustCompile(`(?m)^1\s+applied\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+00001_\w+\.sql$`).MatchString(out) {
		t.Errorf("status line of version 1 is not VERSION STATE APPLIED-AT FILE:\n%s", out)
	}

	// up is idempotent.
	mustCLI(t, "migrate", "up")
	if s := migrationStates(t, mustCLI(t, "migrate", "status")); s["1"] != "applied" {
		t.Errorf("after a second up: version 1 is %q", s["1"])
	}

	// The CLI's commands work on the migrated database.
	mustCLI(t, "users", "create", "--email", "ada@example.com", "--name", "Ada", "--role", "admin")

	// down rolls back one migration; with only version 1 that is everything.
	mustCLI(t, "migrate", "down")
	states = migrationStates(t, mustCLI(t, "migrate", "status"))
	if len(states) == 1 && states["1"] != "pending" {
		t.Errorf("after down: version 1 is %q, want pending", states["1"])
	}
	pending := 0
	for _, s := range states {
		if s == "pending" {
			pending++
		}
	}
	if pending != 1 {
		t.Errorf("after down: %d pending migrations, want 1 (%v)", pending, states)
	}

	// And up again brings everything back.
	mustCLI(t, "migrate", "up")
	if s := migrationStates(t, mustCLI(t, "migrate", "status")); s["1"] != "applied" {
		t.Errorf("after re-up: version 1 is %q", s["1"])
	}

	for _, args := range [][]string{{"migrate"}, {"migrate", "sideways"}} {
		wantCLIError(t, args...)
	}
}

func TestMigrateDownOnEmptyDatabase(t *testing.T) {
	setupCLI(t)
	// Nothing applied: down has nothing to roll back. It must not panic, and
	// it must leave the database usable.
	if _, _, err := cli(t, "migrate", "down"); err != nil {
		t.Logf("migrate down with nothing applied: %v", err)
	}
	mustCLI(t, "migrate", "up")
	if s := migrationStates(t, mustCLI(t, "migrate", "status")); s["1"] != "applied" {
		t.Errorf("version 1 is %q", s["1"])
	}
}

func TestMigrateCreate(t *testing.T) {
	dir := setupCLI(t)
	pg := filepath.Join(dir, "store", "migrations", "postgres")
	lite := filepath.Join(dir, "store", "migrations", "sqlite")
	for _, d := range []string{pg, lite} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path string) {
		if err := os.WriteFile(path, []byte("-- +goose Up\n-- +goose Down\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(pg, "00001_init.sql"))
	write(filepath.Join(lite, "00001_init.sql"))
	write(filepath.Join(lite, "00002_only_here.sql")) // the highest in either folder counts
	write(filepath.Join(pg, "README.md"))

	out := mustCLI(t, "migrate", "create", "add_things")
	wantFiles := []string{
		filepath.Join("store", "migrations", "postgres", "00003_add_things.sql"),
		filepath.Join("store", "migrations", "sqlite", "00003_add_things.sql"),
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout = %q, want two 'created' lines", out)
	}
	for i, f := range wantFiles {
		if lines[i] != "created "+f {
			t.Errorf("line %d = %q, want %q", i, lines[i], "created "+f)
		}
		body, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !strings.Contains(string(body), "-- +goose Up") || !strings.Contains(string(body), "-- +goose Down") {
			t.Errorf("%s has no goose sections:\n%s", f, body)
		}
	}
	if !strings.Contains(readFile(t, filepath.Join(dir, wantFiles[0])), "postgres") || !strings.Contains(readFile(t, filepath.Join(dir, wantFiles[1])), "sqlite") {
		t.Errorf("the files do not name their dialect")
	}

	// The next one gets the next version; the name is slugged.
	out = mustCLI(t, "migrate", "create", "Add More Things!")
	if !strings.Contains(out, "00004_add_more_things.sql") {
		t.Errorf("stdout = %q", out)
	}
	for _, d := range []string{pg, lite} {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		var sqls []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".sql") {
				sqls = append(sqls, e.Name())
			}
		}
		if !slices.Contains(sqls, "00003_add_things.sql") || !slices.Contains(sqls, "00004_add_more_things.sql") {
			t.Errorf("%s holds %v", d, sqls)
		}
	}

	for _, args := range [][]string{
		{"migrate", "create"},
		{"migrate", "create", "a", "b"},
		{"migrate", "create", "!!!"},
	} {
		wantCLIError(t, args...)
	}
}

func TestMigrateCreateOutsideTheRepository(t *testing.T) {
	dir := setupCLI(t)
	err := wantCLIError(t, "migrate", "create", "add_things")
	if !strings.Contains(err.Error(), "migrations") {
		t.Errorf("error %q does not mention the migrations folder", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("files were written: %v", entries)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// config check

var kvLine = regexp.MustCompile(`^[A-Z][A-Z0-9_]*=`)

func TestConfigCheck(t *testing.T) {
	setupCLI(t)
	t.Setenv("GOOGLE_API_KEY", "AIza-google-plaintext")
	t.Setenv("CASDOOR_CLIENT_SECRET", "casdoor-plaintext")

	out := mustCLI(t, "config", "check")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if last := lines[len(lines)-1]; last != "configuration OK" {
		t.Errorf("last line = %q, want configuration OK", last)
	}
	values := map[string]string{}
	var keys []string
	for _, l := range lines[:len(lines)-1] {
		if strings.HasPrefix(l, "warning: ") {
			continue
		}
		if !kvLine.MatchString(l) {
			t.Errorf("line %q is not KEY=value", l)
			continue
		}
		k, v, _ := strings.Cut(l, "=")
		values[k] = v
		keys = append(keys, k)
	}
	if !slices.IsSorted(keys) {
		t.Errorf("keys are not sorted: %v", keys)
	}
	for k, want := range map[string]string{
		"APP_ENV":                     "test",
		"SECRET_KEY":                  "(set)",
		"GOOGLE_API_KEY":              "(set)",
		"CASDOOR_CLIENT_SECRET":       "(set)",
		"OPENAI_API_KEY":              "(unset)",
		"REDIS_URL":                   "",
		"ALGORITHM":                   "HS256",
		"API_V1_STR":                  "/api/v1",
		"ACCESS_TOKEN_EXPIRE_MINUTES": "30",
		"FLOW_MAX_NODES":              "200",
	} {
		got, ok := values[k]
		if !ok {
			t.Errorf("%s is missing", k)
		} else if got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(values["DATABASE_URL"], "sqlite:") {
		t.Errorf("DATABASE_URL=%q", values["DATABASE_URL"])
	}
	for _, secret := range []string{testSecret, "AIza-google-plaintext", "casdoor-plaintext"} {
		if strings.Contains(out, secret) {
			t.Errorf("config check printed the secret %q:\n%s", secret, out)
		}
	}
}

func TestConfigCheckRedactsURLPasswords(t *testing.T) {
	setupCLI(t)
	t.Setenv("DATABASE_URL", "postgres://app:db-hunter2@db.example:5432/wataomi")
	t.Setenv("REDIS_URL", "redis://:redis-hunter2@cache.example:6379/0")

	out := mustCLI(t, "config", "check") // it does not connect
	for _, secret := range []string{"db-hunter2", "redis-hunter2", testSecret} {
		if strings.Contains(out, secret) {
			t.Errorf("config check printed %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "DATABASE_URL=postgres://app:xxxxx@db.example:5432/wataomi\n") {
		t.Errorf("DATABASE_URL is not shown redacted:\n%s", out)
	}
}

func TestConfigCheckInvalid(t *testing.T) {
	setupCLI(t)
	t.Setenv("ALGORITHM", "RS256")

	out, _, err := cli(t, "config", "check")
	if err == nil {
		t.Fatalf("config check accepted ALGORITHM=RS256:\n%s", out)
	}
	if !strings.Contains(err.Error(), "ALGORITHM") {
		t.Errorf("error %q does not name ALGORITHM", err)
	}
	// The effective values are still shown, still redacted.
	if !strings.Contains(out, "ALGORITHM=RS256\n") || !strings.Contains(out, "SECRET_KEY=(set)\n") {
		t.Errorf("stdout does not show the effective values:\n%s", out)
	}
	if strings.Contains(out, testSecret) {
		t.Errorf("config check printed SECRET_KEY")
	}
	if strings.Contains(out, "configuration OK") {
		t.Errorf("an invalid configuration was reported OK")
	}

	for _, args := range [][]string{{"config"}, {"config", "show"}, {"config", "check", "extra"}} {
		wantCLIError(t, args...)
	}
}

// ---------------------------------------------------------------------------
// openapi, help and unknown commands

func TestOpenAPI(t *testing.T) {
	setupCLI(t)

	out := mustCLI(t, "openapi", "--format", "json")
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--format json is not JSON: %v", err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", doc["openapi"])
	}
	if _, ok := doc["paths"].(map[string]any); !ok {
		t.Errorf("the JSON spec has no paths")
	}
	if out != string(openapi.BundledJSON) {
		t.Errorf("--format json is not the embedded JSON")
	}

	const header = "# GENERATED by tools/specbundle"
	for _, args := range [][]string{{"openapi", "--format", "yaml"}, {"openapi", "--format=yaml"}, {"openapi"}} {
		out := mustCLI(t, args...)
		if !strings.HasPrefix(out, header) {
			t.Errorf("%v begins with %q, want the generated header", args, out[:min(len(out), 60)])
		}
		if !strings.Contains(out, "\nopenapi: 3.1.0\n") {
			t.Errorf("%v has no openapi: 3.1.0 line", args)
		}
		if out != string(openapi.BundledYAML) {
			t.Errorf("%v is not the embedded YAML", args)
		}
	}

	for _, args := range [][]string{{"openapi", "--format", "xml"}, {"openapi", "--format"}, {"openapi", "--bogus"}} {
		wantCLIError(t, args...)
	}
}

func TestUnknownCommand(t *testing.T) {
	setupCLI(t)
	for _, cmd := range []string{"frobnicate", "user", "--version", ""} {
		out, errOut, err := cli(t, cmd)
		if err == nil {
			t.Errorf("%q succeeded", cmd)
			continue
		}
		if !strings.Contains(err.Error(), "unknown command") {
			t.Errorf("%q: error %q", cmd, err)
		}
		if out != "" {
			t.Errorf("%q printed %q on stdout", cmd, out)
		}
		if !strings.Contains(errOut, "usage: wataomi") {
			t.Errorf("%q: no usage on stderr: %q", cmd, errOut)
		}
	}
}

func TestHelp(t *testing.T) {
	setupCLI(t)
	for _, cmd := range []string{"help", "-h", "--help"} {
		out, errOut, err := cli(t, cmd)
		if err != nil {
			t.Errorf("%s: %v", cmd, err)
		}
		if !strings.HasPrefix(out, "usage: wataomi") || errOut != "" {
			t.Errorf("%s: stdout %q, stderr %q", cmd, out, errOut)
		}
		for _, sub := range []string{"migrate", "users create", "token", "config check", "openapi"} {
			if !strings.Contains(out, sub) {
				t.Errorf("usage does not mention %s", sub)
			}
		}
	}
}

func TestFlagErrorsGoToStderr(t *testing.T) {
	setupCLI(t)
	_, errOut, err := cli(t, "token", "--bogus")
	if err == nil {
		t.Fatal("an unknown flag was accepted")
	}
	if !strings.Contains(errOut, "bogus") {
		t.Errorf("stderr = %q, want the flag error on run's stderr", errOut)
	}
}

func TestHealthCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	if err := run([]string{"health", "--url", srv.URL + "/health"}, &out, &errOut); err != nil || strings.TrimSpace(out.String()) != "ok" {
		t.Fatalf("healthy server: err=%v out=%q", err, out.String())
	}
	if err := run([]string{"health", "--url", srv.URL + "/nope"}, &out, &errOut); err == nil {
		t.Fatal("a 404 must fail the probe")
	}
	if err := run([]string{"health", "--url", "http://127.0.0.1:1/health"}, &out, &errOut); err == nil {
		t.Fatal("an unreachable server must fail the probe")
	}
}

func TestUsersSetRoleAndRelink(t *testing.T) {
	setupCLI(t)
	mustCLI(t, "users", "create", "--email", "root@example.com", "--name", "Root", "--role", "super_admin")
	mustCLI(t, "users", "create", "--email", "ada@example.com", "--name", "Ada", "--role", "editor")

	// The last active super_admin is protected unless --force.
	if _, _, err := cli(t, "users", "set-role", "--email", "root@example.com", "--role", "admin"); err == nil ||
		!strings.Contains(err.Error(), "last active super_admin") {
		t.Fatalf("demoting the last super_admin: err=%v", err)
	}
	if out := mustCLI(t, "users", "set-role", "--email", "ADA@example.com", "--role", "manager"); !strings.Contains(out, "editor -> manager") {
		t.Fatalf("set-role printed %q", out)
	}
	for _, bad := range [][]string{
		{"users", "set-role", "--email", "ada@example.com", "--role", "boss"},
		{"users", "set-role", "--role", "viewer"},
		{"users", "set-role", "--email", "nobody@example.com", "--role", "viewer"},
		{"users", "relink"},
		{"users", "relink", "--email", "nobody@example.com"},
	} {
		if _, _, err := cli(t, bad...); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
	mustCLI(t, "users", "set-role", "--email", "root@example.com", "--role", "admin", "--force")

	db := openTestDB(t)
	ctx := context.Background()
	ada, err := store.GetUserByEmail(ctx, db.DB, "ada@example.com")
	if err != nil || ada.Role != "manager" {
		t.Fatalf("ada: %+v %v", ada, err)
	}
	root, err := store.GetUserByEmail(ctx, db.DB, "root@example.com")
	if err != nil || root.Role != "admin" {
		t.Fatalf("root: %+v %v", root, err)
	}
	// Newest first: the role change, then the creation, both by the system (the CLI).
	audit, err := store.ListAuditForResource(ctx, db.DB, "user", ada.ID)
	if err != nil || len(audit) != 2 || audit[0].Action != "user.role_changed" || audit[1].Action != "user.created" ||
		audit[0].ActorType != store.ActorSystem || audit[1].ActorType != store.ActorSystem {
		t.Fatalf("audit for ada: %+v %v", audit, err)
	}

	sub := "casdoor-sub-1"
	ada.ExternalID = &sub
	if err := store.SaveUser(ctx, db.DB, ada); err != nil {
		t.Fatal(err)
	}
	db.Close()
	mustCLI(t, "users", "relink", "--email", "ada@example.com")
	db = openTestDB(t)
	ada, err = store.GetUserByEmail(ctx, db.DB, "ada@example.com")
	if err != nil || ada.ExternalID != nil {
		t.Fatalf("relink left external_id %v (%v)", ada.ExternalID, err)
	}
}

func TestTokenWithRefresh(t *testing.T) {
	setupCLI(t)
	out := mustCLI(t, "token", "--user", "ada@example.com", "--role", "editor", "--refresh")
	var got struct{ AccessToken, RefreshToken string }
	if err := json.Unmarshal([]byte(out), &struct {
		A *string `json:"access_token"`
		R *string `json:"refresh_token"`
	}{&got.AccessToken, &got.RefreshToken}); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if !strings.HasPrefix(got.RefreshToken, "wtr_") {
		t.Fatalf("refresh token %q", got.RefreshToken)
	}
	claims, err := verifier(t).Verify(got.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	db := openTestDB(t)
	rt, err := store.GetRefreshTokenByHash(context.Background(), db.DB, auth.HashOpaque(got.RefreshToken))
	if err != nil || rt.FamilyID != claims.SID || rt.UserID != claims.UserID {
		t.Fatalf("refresh row %+v (%v) does not match the access token's session %q", rt, err, claims.SID)
	}
}

// ---------------------------------------------------------------------------
// audit

func TestAuditPurge(t *testing.T) {
	setupCLI(t)
	t.Setenv("AUDIT_RETENTION_DAYS", "30")
	db := openTestDB(t)
	ctx := context.Background()
	now := store.Now()
	for i, age := range []time.Duration{400 * 24 * time.Hour, 31 * 24 * time.Hour, 29 * 24 * time.Hour, time.Hour} {
		id := int64(i + 1)
		if err := store.InsertAudit(ctx, db.DB, &store.AuditLog{OccurredAt: now.Add(-age), Action: "flow.update", ActorType: store.ActorSystem,
			ActorDisplay: "test", ResourceType: "flow", ResourceID: &id}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	// Default cutoff: now - AUDIT_RETENTION_DAYS (30): the two older rows go.
	if out := mustCLI(t, "audit", "purge"); !strings.Contains(out, "deleted 2 audit entries") {
		t.Fatalf("purge printed %q", out)
	}
	// --before moves the cutoff; the 29-day-old row goes, the newest stays.
	if out := mustCLI(t, "audit", "purge", "--before", now.Add(-2*time.Hour).Format(time.RFC3339)); !strings.Contains(out, "deleted 1 audit entries") {
		t.Fatalf("purge --before printed %q", out)
	}
	db = openTestDB(t)
	var left []store.AuditLog
	if err := db.Find(&left).Error; err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || *left[0].ResourceID != 4 {
		t.Fatalf("left after purge: %+v", left)
	}
	for _, bad := range [][]string{{"audit"}, {"audit", "list"}, {"audit", "purge", "--before", "yesterday"}} {
		if _, _, err := cli(t, bad...); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
}

func TestSecretsRotate(t *testing.T) {
	setupCLI(t)
	keyA := base64.StdEncoding.EncodeToString([]byte("rotation-test-key-A-0123456789ab"))
	keyB := base64.StdEncoding.EncodeToString([]byte("rotation-test-key-B-0123456789ab"))
	t.Setenv("ENCRYPTION_KEY", keyA)
	t.Setenv("ENCRYPTION_KEYS_PREVIOUS", "")
	mustCLI(t, "migrate", "up")

	// Two integrations sealed under A, as the API stores them.
	cfg, err := config.Load(config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ringA, err := integration.KeyringFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.DatabaseDialect(), cfg.DatabaseDSN(), 1)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, name := range []string{"one", "two"} {
		in := &store.Integration{Provider: integration.OpenAI, Name: name, IsActive: true, Status: integration.StatusUnverified}
		if err := store.SaveIntegration(ctx, db.DB, in); err != nil {
			t.Fatal(err)
		}
		if in.SecretsCiphertext, err = integration.NewBox(ringA).Seal(in.ID, map[string]string{"api_key": "sk-" + name}); err != nil {
			t.Fatal(err)
		}
		if err := store.SaveIntegration(ctx, db.DB, in); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, in.ID)
	}
	db.Close()

	// B alone cannot open A's rows: the rotation reports them and fails.
	t.Setenv("ENCRYPTION_KEY", keyB)
	if err := wantCLIError(t, "secrets", "rotate"); !strings.Contains(err.Error(), "ENCRYPTION_KEYS_PREVIOUS") {
		t.Fatalf("rotate without the old key: %v", err)
	}
	// B current, A previous: every row is re-sealed under B.
	t.Setenv("ENCRYPTION_KEYS_PREVIOUS", keyA)
	out := mustCLI(t, "secrets", "rotate")
	kidB := secretbox.KeyID([]byte("rotation-test-key-B-0123456789ab"))
	if !strings.Contains(out, "re-encrypted 2 integration(s) under key "+kidB) {
		t.Fatalf("output: %q", out)
	}
	if out := mustCLI(t, "secrets", "rotate"); !strings.Contains(out, "re-encrypted 0 integration(s)") {
		t.Fatalf("second run: %q", out)
	}
	// Now B alone opens them.
	t.Setenv("ENCRYPTION_KEYS_PREVIOUS", "")
	cfg, err = config.Load(config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ringB, _ := integration.KeyringFromConfig(cfg)
	db, err = store.Open(ctx, cfg.DatabaseDialect(), cfg.DatabaseDSN(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i, id := range ids {
		in, err := store.GetIntegration(ctx, db.DB, id)
		if err != nil {
			t.Fatal(err)
		}
		s, err := integration.NewBox(ringB).Open(in)
		if err != nil || s["api_key"] != "sk-"+[]string{"one", "two"}[i] {
			t.Fatalf("row %d after rotation: %v, %v", id, s, err)
		}
	}
	if err := wantCLIError(t, "secrets", "list"); !strings.Contains(err.Error(), "secrets needs: rotate") {
		t.Fatalf("unknown subcommand: %v", err)
	}
}
