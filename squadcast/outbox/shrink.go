package outbox

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// A storm's backlog makes the file grow (a million spilled events take
// hundreds of megabytes), and the daemon maps all of it: the pages its
// delivery read stay in its RSS until the file is unmapped. Compacting at
// the next start gives the space back then; Shrink gives it back while
// the daemon runs, once the backlog is gone: the Committer calls it after
// a transaction that left no event pending (at most every
// shrinkCheckEvery), on its own goroutine, so no commit runs meanwhile.

// shrinkCheckEvery bounds how often the Committer checks whether the file
// is sparse. A variable for tests.
var shrinkCheckEvery = 5 * time.Second

// Shrunk describes a Shrink that replaced the file.
type Shrunk struct {
	Before, After int64         // the file's size in bytes
	Took          time.Duration // with every transaction waiting
}

// Shrink compacts the file in place when it is mostly free pages (as
// CompactIfSparse at start), while the DB is open and in use: it copies
// what the file holds (buckets, keys and sequence numbers as they are)
// into a new file, which replaces the old one, and goes on with it.
// Transactions wait meanwhile; nothing else changes for the DB's users.
// It returns nil, nil when the file is not sparse. On an error the DB
// goes on with the old file, as it was.
func (d *DB) Shrink() (*Shrunk, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	size, ok := sparse(d.db, d.path)
	if !ok {
		return nil, nil
	}
	start := time.Now()
	tmp := d.path + compactSuffix
	_ = os.Remove(tmp)
	dst, err := compactOpen(d.db, tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("shrink outbox %s: %w", d.path, err)
	}
	// The new file, still open, takes the old one's name: a crash from
	// here on finds a complete outbox at the path, old or new.
	if err := os.Rename(tmp, d.path); err != nil {
		dst.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("shrink outbox %s: %w", d.path, err)
	}
	// Synced before the swap: a commit to the new file must not be lost to
	// a crash that brings the old name back. (If the sync fails, the new
	// file is used all the same: the path names it now.)
	err = syncDir(filepath.Dir(d.path))
	old := d.db
	d.db = dst
	// Closing unmaps the old file, and its pages leave the RSS.
	if cerr := old.Close(); err == nil && cerr != nil {
		err = cerr
	}
	after := int64(-1)
	if fi, serr := os.Stat(d.path); serr == nil {
		after = fi.Size()
	}
	if err != nil {
		return &Shrunk{Before: size, After: after, Took: time.Since(start)}, fmt.Errorf("shrink outbox %s: %w", d.path, err)
	}
	return &Shrunk{Before: size, After: after, Took: time.Since(start)}, nil
}

// maybeShrink shrinks the file when no event is pending and it is sparse,
// checking at most every shrinkCheckEvery. It runs on the committer's
// goroutine, after a successful transaction.
func (c *Committer[T]) maybeShrink() {
	if c.db.Pending() > 0 || time.Since(c.shrinkChecked) < shrinkCheckEvery {
		return
	}
	c.shrinkChecked = time.Now()
	s, err := c.db.Shrink()
	if err != nil {
		c.cfg.Logger.Warn("cannot shrink the outbox after its backlog drained; going on with it as it is", zap.Error(err))
	}
	if s == nil {
		return
	}
	c.cfg.Logger.Info("shrank the outbox: its backlog drained, and most of the file was free space",
		zap.String("file", c.db.path), zap.Int64("bytes_before", s.Before), zap.Int64("bytes_after", s.After),
		zap.Duration("took", s.Took.Round(time.Millisecond)))
	c.shrinks.Add(1)
	if c.cfg.OnShrink != nil {
		c.cfg.OnShrink()
	}
}

// Shrinks returns the number of times the file was shrunk while open.
func (c *Committer[T]) Shrinks() int64 { return c.shrinks.Load() }
