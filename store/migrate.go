package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/rivermigrate"
)

// The migrations of each dialect live in migrations/<dialect>; the two folders
// hold the same versions with the same names.
//
//go:embed migrations
var migrations embed.FS

// MigrationFS is the embedded migrations tree: postgres/*.sql and sqlite/*.sql.
func MigrationFS() fs.FS {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the directory is embedded; cannot happen
	}
	return sub
}

func (db *DB) provider() (*goose.Provider, error) {
	var (
		dialect goose.Dialect
		opts    = []goose.ProviderOption{goose.WithLogger(goose.NopLogger())}
	)
	switch db.Dialect {
	case Postgres:
		dialect = goose.DialectPostgres
		// Replicas starting together apply each migration once.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	case SQLite:
		dialect = goose.DialectSQLite3
	default:
		return nil, fmt.Errorf("store: unknown dialect %q", db.Dialect)
	}
	fsys, err := fs.Sub(migrations, "migrations/"+db.Dialect)
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(dialect, db.sqlDB, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	return p, nil
}

func logResults(ctx context.Context, results []*goose.MigrationResult) {
	for _, r := range results {
		slog.InfoContext(ctx, "migration applied",
			"direction", r.Direction,
			"version", r.Source.Version,
			"file", filepath.Base(r.Source.Path),
			"duration", r.Duration)
	}
}

// MigrateUp applies every pending migration.
func MigrateUp(ctx context.Context, db *DB) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	logResults(ctx, results)
	if err != nil {
		return fmt.Errorf("store: migrate up: %w", err)
	}
	return migrateRiver(ctx, db, rivermigrate.DirectionUp)
}

// MigrateDown rolls back the most recent migration.
func MigrateDown(ctx context.Context, db *DB) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	result, err := p.Down(ctx)
	if result != nil {
		logResults(ctx, []*goose.MigrationResult{result})
	}
	if err != nil {
		return fmt.Errorf("store: migrate down: %w", err)
	}
	return nil
}

// MigrateDownAll rolls back every migration (version 0). Tests use it; it
// drops all data.
func MigrateDownAll(ctx context.Context, db *DB) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	results, err := p.DownTo(ctx, 0)
	logResults(ctx, results)
	if err != nil {
		return fmt.Errorf("store: migrate down to 0: %w", err)
	}
	return migrateRiver(ctx, db, rivermigrate.DirectionDown)
}

// MigrationStatus writes one line per migration: version, applied or
// pending, when it was applied, and the file name.
func MigrationStatus(ctx context.Context, db *DB, w io.Writer) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	statuses, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("store: migration status: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
	for _, s := range statuses {
		applied := "-"
		if s.State == goose.StateApplied && !s.AppliedAt.IsZero() {
			applied = s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, s.State, applied, filepath.Base(s.Source.Path))
	}
	return tw.Flush()
}

// PendingMigrations counts the embedded migrations not yet applied; the
// readiness probe reports not-ready while it is above zero.
func PendingMigrations(ctx context.Context, db *DB) (int, error) {
	p, err := db.provider()
	if err != nil {
		return 0, err
	}
	statuses, err := p.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: migration status: %w", err)
	}
	n := 0
	for _, s := range statuses {
		if s.State == goose.StatePending {
			n++
		}
	}
	return n, nil
}

var migrationFile = regexp.MustCompile(`^(\d+)_.*\.sql$`)

const migrationTemplate = `-- +goose Up
-- Write the %[1]s DDL here. Keep the postgres and sqlite files in step.
-- Use -- +goose StatementBegin / StatementEnd around statements with semicolons inside.

-- +goose Down
-- Undo the Up section, in reverse order.
`

// CreateMigration writes NNNNN_<name>.sql with empty Up and Down sections into
// both dir/postgres and dir/sqlite (the CLI passes "store/migrations"). The
// version is one more than the highest in either folder. It returns the paths
// written.
func CreateMigration(dir, name string) ([]string, error) {
	slug := migrationSlug(name)
	if slug == "" {
		return nil, fmt.Errorf("store: migration name %q has no letters or digits", name)
	}
	dialects := []string{Postgres, SQLite}
	var last int64
	for _, d := range dialects {
		entries, err := os.ReadDir(filepath.Join(dir, d))
		if err != nil {
			return nil, fmt.Errorf("store: migrations folder (run from the repository root): %w", err)
		}
		for _, e := range entries {
			m := migrationFile.FindStringSubmatch(e.Name())
			if m == nil {
				continue
			}
			v, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("store: migration %s: %w", e.Name(), err)
			}
			last = max(last, v)
		}
	}
	file := fmt.Sprintf("%05d_%s.sql", last+1, slug)
	var written []string
	for _, d := range dialects {
		path := filepath.Join(dir, d, file)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, err = fmt.Fprintf(f, migrationTemplate, d)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			for _, p := range written {
				_ = os.Remove(p)
			}
			return nil, fmt.Errorf("store: create migration: %w", err)
		}
		written = append(written, path)
	}
	return written, nil
}

// migrationSlug turns "Add flow tags" into "add_flow_tags".
func migrationSlug(name string) string {
	var b strings.Builder
	underscore := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if underscore && b.Len() > 0 {
				b.WriteByte('_')
			}
			underscore = false
			b.WriteRune(r)
			continue
		}
		underscore = true
	}
	s := b.String()
	if len(s) > 80 {
		s = strings.TrimRight(s[:80], "_")
	}
	return s
}
