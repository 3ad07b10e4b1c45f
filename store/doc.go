// Package store owns the database: opening it (PostgreSQL in production, the
// embedded SQLite file by default), the goose migrations of both dialects,
// the GORM models, transactions, typed errors and the search_text columns.
//
// Two rules keep the single SQLite connection from deadlocking, and they hold
// on PostgreSQL too so code behaves the same on both: inside [DB.Tx] use only
// the transaction handed to the callback, and never keep a rows cursor open
// across a network write (read keyset batches of at most 500 rows instead).
//
// Times are written in UTC with millisecond precision (see [Now]); SQLite
// stores them as text, which only sorts correctly when every value is UTC.
package store
