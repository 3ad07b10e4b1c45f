package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names accepted by [Open] and reported in [DB.Dialect].
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// DefaultMaxConns is the PostgreSQL pool size used when [Open] gets maxConns <= 0
// (PRODUCT §8 DB_MAX_CONNS).
const DefaultMaxConns = 20

// sqlitePragmas are applied on every SQLite connection. River's SQLite driver
// needs one connection, WAL lets readers of other processes (the CLI) work
// beside it, and busy_timeout makes those processes wait instead of failing.
// _txlock=immediate takes the write lock at BEGIN, so a transaction never
// fails half-way with SQLITE_BUSY when it upgrades from reading to writing.
const sqlitePragmas = "_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_txlock=immediate"

// DB is the application's database handle. Dialect is [Postgres] or [SQLite].
type DB struct {
	*gorm.DB
	Dialect string

	sqlDB *sql.DB
	dsn   string

	listenerOnce sync.Once
	listener     *pgxpool.Pool // River's LISTEN/NOTIFY connections (PostgreSQL)
}

// Now is the current time as the store writes it: UTC, truncated to the
// millisecond so a value read back equals the value written on both dialects.
// Use it for times set by hand (last_login_at, archived_at).
func Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// Open connects to the database. For [SQLite], dsn is a file path (an optional
// "sqlite:" prefix and "?query" are accepted); its directory is created with
// mode 0700 and the pool is forced to one connection. For [Postgres], dsn is a
// libpq URL or key=value string and maxConns is the pool size. Open does not
// migrate; call [MigrateUp].
func Open(ctx context.Context, dialect, dsn string, maxConns int) (*DB, error) {
	var (
		dialector gorm.Dialector
		conns     int
	)
	switch dialect {
	case SQLite:
		path, err := sqliteDSN(dsn)
		if err != nil {
			return nil, err
		}
		dialector = sqlite.Open(path)
		conns = 1
	case Postgres:
		if _, err := pgx.ParseConfig(dsn); err != nil {
			// pgx redacts the password in its parse errors.
			return nil, fmt.Errorf("store: postgres dsn: %w", err)
		}
		dialector = postgres.New(postgres.Config{
			DSN: dsn,
			// Scan timestamptz as UTC instead of time.Local.
			OptionOpenDB: []stdlib.OptionOpenDB{stdlib.OptionAfterConnect(scanTimesInUTC)},
		})
		conns = maxConns
		if conns <= 0 {
			conns = DefaultMaxConns
		}
	default:
		return nil, fmt.Errorf("store: unknown dialect %q (want %q or %q)", dialect, Postgres, SQLite)
	}

	gdb, err := gorm.Open(dialector, &gorm.Config{
		TranslateError: true,
		// SQL and its parameters may hold personal data and secrets: never logged.
		Logger:               logger.Discard.LogMode(logger.Silent),
		NowFunc:              Now,
		PrepareStmt:          false,
		DisableAutomaticPing: true,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dialect, err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dialect, err)
	}
	sqlDB.SetMaxOpenConns(conns)
	sqlDB.SetMaxIdleConns(conns)
	if dialect == Postgres {
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	db := &DB{DB: gdb, Dialect: dialect, sqlDB: sqlDB, dsn: dsn}
	if err := db.Ping(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	return db, nil
}

// sqliteDSN adds the pragmas to a SQLite DSN and creates the file's directory.
func sqliteDSN(dsn string) (string, error) {
	dsn = strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite://"), "sqlite:")
	path, _, _ := strings.Cut(dsn, "?")
	if path == "" {
		return "", errors.New("store: sqlite dsn: empty file path")
	}
	if path != ":memory:" && !strings.HasPrefix(path, "file:") {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", fmt.Errorf("store: sqlite directory: %w", err)
		}
	}
	// A second "?" makes the driver fail with "SQL logic error: out of memory".
	if strings.Contains(dsn, "?") {
		return dsn + "&" + sqlitePragmas, nil
	}
	return dsn + "?" + sqlitePragmas, nil
}

func scanTimesInUTC(_ context.Context, conn *pgx.Conn) error {
	conn.TypeMap().RegisterType(&pgtype.Type{
		Name:  "timestamptz",
		OID:   pgtype.TimestamptzOID,
		Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
	})
	return nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping %s: %w", db.Dialect, err)
	}
	return nil
}

// SQLDB is the underlying pool, for River and goose. On SQLite it has one
// connection: do not use it while a [DB.Tx] is open.
func (db *DB) SQLDB() *sql.DB { return db.sqlDB }

// Close closes the pool.
func (db *DB) Close() error {
	if db.listener != nil {
		db.listener.Close()
	}
	return db.sqlDB.Close()
}
