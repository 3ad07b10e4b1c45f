package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
)

// RiverDriver is River's driver over this database's pool: its database/sql
// driver on PostgreSQL and its SQLite driver on SQLite. Both take *sql.Tx, so
// a job is inserted in the same transaction as the row that needs it
// (DESIGN §4).
//
// On PostgreSQL a small pgx pool (2 connections) carries River's LISTEN/NOTIFY,
// so a committed job wakes a worker at once instead of at the next poll.
func (db *DB) RiverDriver() riverdriver.Driver[*sql.Tx] {
	if db.Dialect == SQLite {
		return riversqlite.New(db.sqlDB)
	}
	db.listenerOnce.Do(func() {
		cfg, err := pgxpool.ParseConfig(db.dsn)
		if err != nil {
			return
		}
		cfg.MaxConns = 2
		if pool, err := pgxpool.NewWithConfig(context.Background(), cfg); err == nil {
			db.listener = pool
		}
	})
	if db.listener == nil {
		return riverdatabasesql.New(db.sqlDB) // polling only
	}
	return riverdatabasesql.NewWithPgxListener(db.sqlDB, db.listener)
}

// migrateRiver applies River's own schema (its job, leader and queue tables).
func migrateRiver(ctx context.Context, db *DB, direction rivermigrate.Direction) error {
	m, err := rivermigrate.New(db.RiverDriver(), &rivermigrate.Config{Logger: nil})
	if err != nil {
		return fmt.Errorf("store: river migrations: %w", err)
	}
	opts := &rivermigrate.MigrateOpts{}
	if direction == rivermigrate.DirectionDown {
		opts.TargetVersion = -1
	}
	if _, err := m.Migrate(ctx, direction, opts); err != nil {
		return fmt.Errorf("store: river migrate %s: %w", direction, err)
	}
	return nil
}
