package outbox

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// An outbox file grows to hold the largest backlog it ever had (a long
// outage, with spilled events, can make it gigabytes) and bbolt never gives
// the space back: freed pages are only reused. So at start, when most of
// the file is free, the daemon copies what it holds into a new file
// (bbolt.Compact: buckets, keys and sequence numbers as they are) and
// replaces the old one with it.

// Compaction at start: when at least compactMinFree bytes, and at least
// compactMinShare of the file, are free pages. Variables for tests.
var (
	compactMinFree  int64 = 64 << 20
	compactMinShare       = 0.5
)

// compactTxSize bounds the data copied per transaction of a compaction:
// bbolt holds a transaction's pages in memory, as nodes several times
// their size (64 MiB took about 175 MiB of heap; 256 KiB, copying a
// million groups' alert state, about 10 MiB, and no more time). The
// copy's transactions are not synced; the copy is, once, at the end.
const compactTxSize = 256 << 10

// compactSuffix names the new file while it is written; one left behind
// by a crash is removed at the next start.
const compactSuffix = ".compact"

// CompactIfSparse compacts the file when it is mostly free pages, and
// returns the DB to use: o itself, or o reopened on the compacted file. A
// failed compaction is logged, and o is kept as it is. Call it before
// anything else uses o (at start).
func CompactIfSparse(o *DB, log *zap.Logger) (*DB, error) {
	tmp := o.path + compactSuffix
	if err := os.Remove(tmp); err == nil {
		log.Info("removed an outbox compaction left unfinished", zap.String("file", tmp))
	}
	size, _, ok := sparse(o.db, o.path)
	if !ok {
		return o, nil
	}
	start := time.Now()
	if err := compactTo(o.db, tmp); err != nil {
		os.Remove(tmp)
		log.Warn("cannot compact the outbox; going on with it as it is", zap.String("file", o.path), zap.Error(err))
		return o, nil
	}
	if err := o.Close(); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("compact outbox %s: close: %w", o.path, err)
	}
	if err := os.Rename(tmp, o.path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("compact outbox %s: %w", o.path, err)
	}
	if err := syncDir(filepath.Dir(o.path)); err != nil {
		return nil, fmt.Errorf("compact outbox %s: %w", o.path, err)
	}
	after := int64(-1)
	if fi, err := os.Stat(o.path); err == nil {
		after = fi.Size()
	}
	log.Info("compacted the outbox: most of it was free space left by an earlier backlog",
		zap.String("file", o.path), zap.Int64("bytes_before", size), zap.Int64("bytes_after", after),
		zap.Duration("took", time.Since(start).Round(time.Millisecond)))
	return Open(o.path, Options{Check: o.check})
}

// sparse reports whether the file of db at path is mostly free pages (see
// compactMinFree and compactMinShare), with its size.
func sparse(db *bolt.DB, path string) (size, free int64, ok bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, false // bbolt has it open; nothing to decide on
	}
	size = fi.Size()
	free = int64(db.Stats().FreePageN) * int64(db.Info().PageSize)
	return size, free, free >= compactMinFree && float64(free) >= compactMinShare*float64(size)
}

// compactTo writes a compacted copy of db to path, synced.
func compactTo(db *bolt.DB, path string) error {
	dst, err := compactOpen(db, path)
	if err != nil {
		return err
	}
	return dst.Close()
}

// compactOpen writes a compacted copy of db to path, synced, and returns
// it open.
func compactOpen(db *bolt.DB, path string) (*bolt.DB, error) {
	tx, err := db.Begin(false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	return copyOpen(tx, path)
}

// copyOpen writes what tx sees to a new file at path, synced, and returns
// it open.
func copyOpen(tx *bolt.Tx, path string) (*bolt.DB, error) {
	dst, err := openBolt(path, false)
	if err != nil {
		return nil, err
	}
	dst.NoSync = true // one sync at the end
	if err := copyTx(tx, dst, compactTxSize); err != nil {
		dst.Close()
		return nil, err
	}
	dst.NoSync = false
	if err := dst.Sync(); err != nil {
		dst.Close()
		return nil, err
	}
	return dst, nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
