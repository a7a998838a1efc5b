package outbox

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// A storm's backlog makes the file grow (a million spilled events take
// hundreds of megabytes), and the daemon maps all of it: the pages its
// delivery read stay in its RSS until the file is unmapped. Compacting at
// the next start gives the space back then; Shrink gives it back while
// the daemon runs, once the backlog is gone: after a transaction that left
// no event pending (at most every shrinkCheckEvery), the Committer starts
// it on a goroutine of its own, and goes on committing meanwhile.

// shrinkCheckEvery bounds how often the Committer checks whether the file
// is sparse. A variable for tests.
var shrinkCheckEvery = 5 * time.Second

// shrinkMaxUsed bounds the data Shrink copies (the file's size less its
// free pages: mostly alert state): the copy's read transaction keeps the
// pages freed meanwhile from reuse, and a commit that must grow the file
// waits for it. A larger file is compacted at the next start instead.
const shrinkMaxUsed = 256 << 20

// journalMax bounds the batches a Shrink keeps (about, in bytes) while it
// copies, to write to the copy: past it, the Shrink gives up (see
// journalBatch). A variable for tests.
var journalMax int64 = 16 << 20

// afterShrinkCopy, when set, runs in Shrink after the copy, before the
// journal is written to it (tests commit there).
var afterShrinkCopy func()

// Shrunk describes a Shrink that replaced the file.
type Shrunk struct {
	Before, After int64         // the file's size in bytes
	Took          time.Duration // in all
	Held          time.Duration // of it with every transaction waiting
}

// Shrink compacts the file in place when it is mostly free pages (as
// CompactIfSparse at start), while the DB is open and in use: it copies a
// snapshot of what the file holds (buckets, keys and sequence numbers as
// they are) into a new file while Commit goes on writing the old one,
// then, with every transaction waiting, writes the batches committed
// meanwhile to the copy too, and goes on with the copy in the old one's
// place. It returns nil, nil when the file is not sparse, or holds more
// than shrinkMaxUsed, or when it gave up because the writes made during
// the copy passed journalMax (a new burst: the next drain tries again).
// On an error before the swap the DB goes on with the old file, as it
// was.
func (d *DB) Shrink() (*Shrunk, error) {
	d.shrinkMu.Lock()
	defer d.shrinkMu.Unlock()
	start := time.Now()
	snap, size, err := d.snapshot()
	if snap == nil || err != nil {
		return nil, err
	}
	tmp := d.path + compactSuffix
	_ = os.Remove(tmp)
	dst, err := copyOpen(snap, tmp)
	_ = snap.Rollback()
	if err != nil {
		d.wmu.Lock()
		d.endJournal()
		d.wmu.Unlock()
		os.Remove(tmp)
		return nil, fmt.Errorf("shrink outbox %s: %w", d.path, err)
	}
	if afterShrinkCopy != nil {
		afterShrinkCopy()
	}
	waited := time.Now()
	if swapped, err := d.swap(dst, tmp); !swapped || err != nil {
		return nil, err
	}
	after := int64(-1)
	if fi, err := os.Stat(d.path); err == nil {
		after = fi.Size()
	}
	return &Shrunk{Before: size, After: after, Took: time.Since(start), Held: time.Since(waited)}, nil
}

// snapshot starts a read transaction to copy, and the journal of the
// batches committed after it, when the file is worth shrinking; else it
// returns nil.
func (d *DB) snapshot() (*bolt.Tx, int64, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.mu.RLock()
	defer d.mu.RUnlock()
	size, free, ok := sparse(d.db, d.path)
	if !ok || size-free > shrinkMaxUsed {
		return nil, 0, nil
	}
	snap, err := d.db.Begin(false)
	if err != nil {
		return nil, 0, fmt.Errorf("shrink outbox %s: %w", d.path, err)
	}
	d.journaling, d.journal, d.journalBytes, d.journalFull = true, nil, 0, false
	return snap, size, nil
}

// endJournal stops journaling, and returns the journal, and whether it
// passed journalMax (then it is empty). Called with d.wmu held.
func (d *DB) endJournal() (j []*Batch, full bool) {
	j, full = d.journal, d.journalFull
	d.journaling, d.journal, d.journalBytes, d.journalFull = false, nil, 0, false
	return j, full
}

// swap writes the journal to dst (the copy, at tmp), and puts it in the
// old file's place, with every transaction waiting. It reports whether
// it did: not when the journal passed journalMax (nor on an error before
// the rename); the copy is then removed.
func (d *DB) swap(dst *bolt.DB, tmp string) (bool, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	drop := func() {
		dst.Close()
		os.Remove(tmp)
	}
	journal, full := d.endJournal()
	if full {
		drop()
		return false, nil
	}
	if err := replay(dst, journal); err != nil {
		drop()
		return false, fmt.Errorf("shrink outbox %s: %w", d.path, err)
	}
	// The copy, still open, takes the old file's name: a crash from here
	// on finds a complete outbox at the path, old or new.
	if err := os.Rename(tmp, d.path); err != nil {
		drop()
		return false, fmt.Errorf("shrink outbox %s: %w", d.path, err)
	}
	// Synced before the swap: a commit to the new file must not be lost to
	// a crash that brings the old name back. (If the sync fails, the new
	// file is used all the same: the path names it now.)
	err := syncDir(filepath.Dir(d.path))
	old := d.db
	d.db = dst
	// Closing unmaps the old file, and its pages leave the RSS.
	if cerr := old.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return true, fmt.Errorf("shrank outbox %s, but then: %w (the shrunk file is in use; a crash before the directory is synced may bring the old one back)", d.path, err)
	}
	return true, nil
}

// maybeShrink starts a Shrink, on a goroutine of its own, when no event
// is pending and none runs, checking at most every shrinkCheckEvery. It
// runs on the committer's goroutine, after a successful transaction.
func (c *Committer[T]) maybeShrink() {
	if c.db.Pending() > 0 || time.Since(c.shrinkChecked) < shrinkCheckEvery || !c.shrinking.CompareAndSwap(false, true) {
		return
	}
	c.shrinkChecked = time.Now()
	c.shrinkWG.Add(1)
	go func() {
		defer c.shrinkWG.Done()
		defer c.shrinking.Store(false)
		s, err := c.db.Shrink()
		if err != nil {
			c.cfg.Logger.Warn("shrinking the outbox after its backlog drained failed", zap.Error(err))
		}
		if s == nil {
			return
		}
		c.cfg.Logger.Info("shrank the outbox: its backlog drained, and most of the file was free space",
			zap.String("file", c.db.path), zap.Int64("bytes_before", s.Before), zap.Int64("bytes_after", s.After),
			zap.Duration("took", s.Took.Round(time.Millisecond)), zap.Duration("writes_held", s.Held.Round(time.Millisecond)))
		c.shrinks.Add(1)
		if c.cfg.OnShrink != nil {
			c.cfg.OnShrink()
		}
	}()
}

// Shrinks returns the number of times the file was shrunk while open.
func (c *Committer[T]) Shrinks() int64 { return c.shrinks.Load() }
