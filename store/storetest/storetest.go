// Package storetest gives each test a fresh, fully migrated, private database
// (DESIGN §6): a clone of a migrated template on PostgreSQL when
// TEST_DATABASE_URL is set, otherwise a copy of a migrated SQLite file.
package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wataomi/wataomi/store"
)

// EnvDatabaseURL names the variable holding a PostgreSQL URL to an admin
// database (one whose user may CREATE DATABASE). Unset: tests use SQLite.
const EnvDatabaseURL = "TEST_DATABASE_URL"

// testMaxConns is the pool size of each test's PostgreSQL database.
const testMaxConns = 4

// Dialect reports the backend that [New] uses: store.Postgres or store.SQLite.
func Dialect() string {
	if os.Getenv(EnvDatabaseURL) != "" {
		return store.Postgres
	}
	return store.SQLite
}

// New returns a fresh, migrated database for this test only, closed (and on
// PostgreSQL dropped) when the test ends.
func New(t testing.TB) *store.DB {
	t.Helper()
	if u := os.Getenv(EnvDatabaseURL); u != "" {
		return NewPostgres(t, u)
	}
	return NewSQLite(t)
}

// ForEachDialect runs fn as a subtest on a fresh database of every available
// dialect: "sqlite" always, "postgres" when TEST_DATABASE_URL is set.
func ForEachDialect(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	t.Run(store.SQLite, func(t *testing.T) { fn(t, NewSQLite(t)) })
	if u := os.Getenv(EnvDatabaseURL); u != "" {
		t.Run(store.Postgres, func(t *testing.T) { fn(t, NewPostgres(t, u)) })
	}
}

// MigrationsDigest is the hex SHA-256 over every embedded migration file (its
// path and contents); template names carry its first 10 characters, so a
// changed migration gets a new template.
func MigrationsDigest() (string, error) {
	h := sha256.New()
	fsys := store.MigrationFS()
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func shortDigest() (string, error) {
	d, err := MigrationsDigest()
	if err != nil {
		return "", err
	}
	return d[:10], nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---- SQLite ----

var sqliteTemplate struct {
	once sync.Once
	path string
	err  error
}

// NewSQLite returns a copy of a migrated SQLite file in t.TempDir(). The
// template is built once per process, as os.TempDir()/wataomi-tmpl-<digest>.db,
// and reused by later processes with the same migrations.
func NewSQLite(t testing.TB) *store.DB {
	t.Helper()
	sqliteTemplate.once.Do(func() {
		sqliteTemplate.path, sqliteTemplate.err = buildSQLiteTemplate()
	})
	if sqliteTemplate.err != nil {
		t.Fatalf("storetest: sqlite template: %v", sqliteTemplate.err)
	}
	path := filepath.Join(t.TempDir(), "wataomi.db")
	if err := copyFile(sqliteTemplate.path, path); err != nil {
		t.Fatalf("storetest: copy sqlite template: %v", err)
	}
	db, err := store.Open(context.Background(), store.SQLite, path, 1)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func buildSQLiteTemplate() (string, error) {
	digest, err := shortDigest()
	if err != nil {
		return "", err
	}
	final := filepath.Join(os.TempDir(), "wataomi-tmpl-"+digest+".db")
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	// Build under a unique name and rename: other test processes only ever
	// see a complete file.
	dir, err := os.MkdirTemp(os.TempDir(), "wataomi-tmpl-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "template.db")
	ctx := context.Background()
	db, err := store.Open(ctx, store.SQLite, tmp, 1)
	if err != nil {
		return "", err
	}
	err = store.MigrateUp(ctx, db)
	if err == nil {
		// Fold the WAL into the main file, so that copying one file suffices.
		err = db.Exec("PRAGMA journal_mode=DELETE").Error
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return final, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ---- PostgreSQL ----

type pgAdmin struct {
	once     sync.Once
	db       *store.DB
	template string
	err      error
}

var (
	pgAdminsMu sync.Mutex
	pgAdmins   = map[string]*pgAdmin{}
)

// admin returns the process-wide admin connection for adminURL and the name
// of the migrated template, creating the template on first use.
func admin(adminURL string) (*pgAdmin, error) {
	pgAdminsMu.Lock()
	a, ok := pgAdmins[adminURL]
	if !ok {
		a = &pgAdmin{}
		pgAdmins[adminURL] = a
	}
	pgAdminsMu.Unlock()
	a.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		a.db, a.err = store.Open(ctx, store.Postgres, adminURL, testMaxConns)
		if a.err != nil {
			return
		}
		a.template, a.err = ensurePGTemplate(ctx, a.db, adminURL)
	})
	return a, a.err
}

// templateLockKey is the pg_advisory_lock key that serialises template
// creation across test processes ("wataomi" in ASCII).
const templateLockKey = 0x77617461_6f6d69

func ensurePGTemplate(ctx context.Context, adminDB *store.DB, adminURL string) (string, error) {
	digest, err := shortDigest()
	if err != nil {
		return "", err
	}
	name := "wataomi_tmpl_" + digest
	build := name + "_build"

	// Advisory locks belong to a session: hold one connection throughout.
	conn, err := adminDB.SQLDB().Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return "", fmt.Errorf("advisory lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", templateLockKey) //nolint:errcheck

	var exists bool
	if err := conn.QueryRowContext(ctx,
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	// A crashed earlier run may have left a half-built template.
	if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(build)+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(build)); err != nil {
		return "", err
	}
	dsn, err := withDatabase(adminURL, build)
	if err != nil {
		return "", err
	}
	db, err := store.Open(ctx, store.Postgres, dsn, 1)
	if err != nil {
		return "", err
	}
	err = store.MigrateUp(ctx, db)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	// The rename publishes a complete template; ALLOW_CONNECTIONS false keeps
	// stray sessions out, since cloning fails while anyone is connected.
	for _, stmt := range []string{
		"ALTER DATABASE " + quoteIdent(build) + " RENAME TO " + quoteIdent(name),
		"ALTER DATABASE " + quoteIdent(name) + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return "", err
		}
	}
	return name, nil
}

// NewPostgres clones the migrated template into wataomi_t_<random>, opens it,
// and drops it WITH (FORCE) when the test ends. adminURL is a postgres:// URL.
func NewPostgres(t testing.TB, adminURL string) *store.DB {
	t.Helper()
	a, err := admin(adminURL)
	if err != nil {
		t.Fatalf("storetest: postgres template: %v", err)
	}
	name := "wataomi_t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := createDatabase(ctx, a.db.SQLDB(), name, a.template); err != nil {
		t.Fatalf("storetest: create database: %v", err)
	}
	t.Cleanup(func() { dropDatabase(t, a.db.SQLDB(), name) })
	dsn, err := withDatabase(adminURL, name)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	db, err := store.Open(ctx, store.Postgres, dsn, testMaxConns)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() }) // runs before the drop (LIFO)
	return db
}

// EmptyPostgres creates an empty database (no migrations), dropped when the
// test ends, and returns its URL. Migration tests use it.
func EmptyPostgres(t testing.TB, adminURL string) string {
	t.Helper()
	a, err := admin(adminURL)
	if err != nil {
		t.Fatalf("storetest: postgres: %v", err)
	}
	name := "wataomi_t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := createDatabase(ctx, a.db.SQLDB(), name, ""); err != nil {
		t.Fatalf("storetest: create database: %v", err)
	}
	t.Cleanup(func() { dropDatabase(t, a.db.SQLDB(), name) })
	dsn, err := withDatabase(adminURL, name)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return dsn
}

func createDatabase(ctx context.Context, adminDB *sql.DB, name, template string) error {
	stmt := "CREATE DATABASE " + quoteIdent(name)
	if template != "" {
		stmt += " TEMPLATE " + quoteIdent(template)
	}
	// Cloning fails with 55006 while another session is connected to the
	// template; that should not happen (ALLOW_CONNECTIONS false), but retry.
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if _, err = adminDB.ExecContext(ctx, stmt); err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}

func dropDatabase(t testing.TB, adminDB *sql.DB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := adminDB.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)"); err != nil {
		t.Errorf("storetest: drop database %s: %v", name, err)
	}
}

// withDatabase returns the postgres:// URL with its database replaced.
func withDatabase(adminURL, name string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("%s must be a postgres:// URL", EnvDatabaseURL)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
