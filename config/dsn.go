package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Driver suffixes of the Python seed's SQLAlchemy URLs; they name a Python
// driver, not a database, so they are dropped.
var (
	postgresDrivers = []string{"asyncpg", "psycopg", "psycopg2"}
	sqliteDrivers   = []string{"aiosqlite", "pysqlite"}
)

// parseDatabaseURL maps DATABASE_URL to a dialect and a DSN: a pgx URL for
// PostgreSQL, a file path for SQLite. Errors never quote the URL, which
// usually carries a password.
func parseDatabaseURL(raw, workDir string) (dialect, dsn string, err error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return DialectSQLite, filepath.Join(workDir, "data", "wataomi.db"), nil
	}
	colon := strings.Index(s, ":")
	if colon <= 0 {
		return "", "", errors.New("DATABASE_URL: expected postgres://…, postgresql://… or sqlite:…")
	}
	scheme, driver, hasDriver := strings.Cut(strings.ToLower(s[:colon]), "+")
	rest := s[colon+1:]
	switch scheme {
	case "postgres", "postgresql":
		if hasDriver && !slices.Contains(postgresDrivers, driver) {
			return "", "", fmt.Errorf("DATABASE_URL: unsupported driver suffix %q (accepted: +%s)", "+"+driver, strings.Join(postgresDrivers, ", +"))
		}
		if !strings.HasPrefix(rest, "//") {
			return "", "", fmt.Errorf("DATABASE_URL: expected %s://host/database", scheme)
		}
		return DialectPostgres, scheme + ":" + rest, nil
	case "sqlite":
		if hasDriver && !slices.Contains(sqliteDrivers, driver) {
			return "", "", fmt.Errorf("DATABASE_URL: unsupported driver suffix %q", "+"+driver)
		}
		var path string
		switch {
		case strings.HasPrefix(rest, "///"): // sqlite:///abs/path
			path = rest[2:]
		case strings.HasPrefix(rest, "//"): // sqlite://rel/path
			path = rest[2:]
		default: // sqlite:PATH
			path = rest
		}
		if path == "" {
			return DialectSQLite, filepath.Join(workDir, "data", "wataomi.db"), nil
		}
		// Special names (":memory:", "file:…") are handed to the driver as they are.
		if strings.HasPrefix(path, ":") || strings.HasPrefix(path, "file:") {
			return DialectSQLite, path, nil
		}
		file, query, hasQuery := strings.Cut(path, "?")
		if file == "" {
			return "", "", errors.New("DATABASE_URL: the sqlite URL has no file path")
		}
		file = resolvePath(workDir, file)
		if hasQuery {
			file += "?" + query
		}
		return DialectSQLite, file, nil
	}
	return "", "", fmt.Errorf("DATABASE_URL: unsupported scheme %q (use postgres://… or sqlite:…)", scheme)
}
