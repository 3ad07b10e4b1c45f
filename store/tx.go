package store

import (
	"context"
	"database/sql"

	"gorm.io/gorm"
)

// Tx runs fn in a transaction: committed when fn returns nil, rolled back when
// it returns an error or panics. The returned error goes through [Classify].
//
// Inside fn use only tx: never db, another store call that takes the *DB, or
// db.SQLDB(). On SQLite the pool has one connection, which the transaction
// holds, so any such call waits for it forever. River's InsertTx gets the same
// transaction through [SQLTx].
func (db *DB) Tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return Classify(db.WithContext(ctx).Transaction(fn))
}

// SQLTx returns the *sql.Tx under a GORM transaction (as passed to the
// callback of [DB.Tx]), for River's InsertTx. ok is false outside a
// transaction.
func SQLTx(tx *gorm.DB) (stx *sql.Tx, ok bool) {
	stx, ok = tx.Statement.ConnPool.(*sql.Tx)
	return stx, ok
}
