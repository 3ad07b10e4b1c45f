package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
)

// RiverDriver is River's driver over this database's pool: its database/sql
// driver on PostgreSQL and its SQLite driver on SQLite. Both take *sql.Tx, so
// a job is inserted in the same transaction as the row that needs it
// (DESIGN §4).
func (db *DB) RiverDriver() riverdriver.Driver[*sql.Tx] {
	if db.Dialect == SQLite {
		return riversqlite.New(db.sqlDB)
	}
	return riverdatabasesql.New(db.sqlDB)
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
