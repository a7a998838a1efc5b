package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// File is the name of the outbox file in the data dir.
const File = "outbox.db"

// Path returns the path of the outbox file in dataDir.
func Path(dataDir string) string { return filepath.Join(dataDir, File) }

// layoutVersion is the layout version this package reads and writes.
const layoutVersion = 1

// lockTimeout is how long opening the file waits for another process's
// lock before failing with ErrInUse.
const lockTimeout = time.Second

var (
	bucketMeta    = []byte("meta")
	bucketPending = []byte("pending")
	bucketDead    = []byte("dead")
	bucketState   = []byte("alert_state")
	keyVersion    = []byte("version")
)

// ErrInUse means another process (a running daemon) holds the outbox file.
var ErrInUse = errors.New("the data dir is in use by a running daemon; stop it first")

// Options are how Open opens the file.
type Options struct {
	// ReadOnly opens the file for reading: a missing file is then an
	// error wrapping fs.ErrNotExist, rather than created.
	ReadOnly bool
	// Check, when set, is applied to every record read (after decoding):
	// a record it refuses is corrupt, as one that cannot be decoded. The
	// caller knows what a valid URL or format is; this package does not.
	Check func(*Record) error
}

// DB is the open outbox file. The daemon keeps one open while it runs;
// the outbox commands open it (read-only to list) while it is stopped.
// Its methods are safe for concurrent use; writes are serialised by bbolt.
type DB struct {
	// mu guards db: transactions hold it for reading, Shrink (which
	// replaces the file and db) and Close for writing.
	mu sync.RWMutex
	db *bolt.DB
	// wmu serialises Commit with the start and the end of a Shrink, and
	// guards journaling and journal: while Shrink copies a snapshot of the
	// file, the batches committed since, to write to the copy (their
	// bytes in journalBytes; journalFull once they passed journalMax, and
	// the Shrink gives up).
	wmu          sync.Mutex
	journaling   bool
	journal      []*Batch
	journalBytes int64
	journalFull  bool
	// shrinkMu is held by Shrink throughout, and by Close and the writes
	// other than Commit (the outbox commands'), which are not journaled.
	shrinkMu sync.Mutex
	path     string
	check    func(*Record) error

	seq     atomic.Uint64 // the last sequence number given out
	pending atomic.Int64  // records in the pending bucket
	dead    atomic.Int64  // records in the dead bucket
}

// Open opens the outbox file at path. A writable open creates the file
// (0600) when it is missing. When another process holds the file, it fails
// after a second with an error wrapping ErrInUse. A file that is not an
// outbox, or is corrupt, gives an error naming the file.
func Open(path string, opts Options) (d *DB, err error) {
	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("open outbox %s: %w (has the daemon run with this data dir?)", path, fs.ErrNotExist)
			}
			return nil, fmt.Errorf("open outbox %s: %w", path, err)
		}
	}
	defer recoverCorrupt(path, &err)
	db, err := openBolt(path, opts.ReadOnly)
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open outbox %s: %w", path, ErrInUse)
		}
		if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
			return nil, fmt.Errorf("open outbox %s: the file is corrupt or not an outbox (move it away to start with an empty outbox): %w", path, err)
		}
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	d = &DB{db: db, path: path, check: opts.Check}
	if err := d.init(opts.ReadOnly); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// openBolt opens the bbolt file. The free pages are not written with
// every commit (NoFreelistSync; opening the file finds them by scanning
// it), and are kept in maps of free runs rather than one sorted array: an
// outbox that held a burst has tens of thousands, and every commit wrote
// their list (8 bytes a page) and merged the pages it freed into a new
// array, allocating about 200KB a commit for 12,000 free pages; now a few
// KB (TestCommitCostIndependentOfFreePages).
func openBolt(path string, readOnly bool) (*bolt.DB, error) {
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, ReadOnly: readOnly,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
}

// init checks the layout version, creating the buckets of a new file, and
// reads the counts and the last sequence number.
func (d *DB) init(readOnly bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if hasBuckets(tx) {
				return errors.New("the file is not an outbox (it has no meta bucket)")
			}
			if !tx.Writable() {
				return nil // a new, empty file: an empty outbox
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keyVersion, []byte(strconv.Itoa(layoutVersion))); err != nil {
				return err
			}
		}
		v, err := strconv.Atoi(string(meta.Get(keyVersion)))
		if err != nil {
			return errors.New("the file's layout version is missing or unreadable")
		}
		if v != layoutVersion {
			return fmt.Errorf("the file's layout version %d is not supported (want %d)", v, layoutVersion)
		}
		if tx.Writable() {
			for _, b := range [][]byte{bucketPending, bucketDead, bucketState} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
		}
		d.readCounts(tx)
		return nil
	}
	var err error
	if readOnly {
		err = d.view(check)
	} else {
		err = d.update(check)
	}
	if err != nil {
		return fmt.Errorf("open outbox %s: %w", d.path, err)
	}
	return nil
}

// readCounts reads the records' counts and the last sequence number given
// out: the pending bucket's sequence, or a larger key of either bucket.
func (d *DB) readCounts(tx *bolt.Tx) {
	var last uint64
	for _, name := range [][]byte{bucketPending, bucketDead} {
		b := tx.Bucket(name)
		if b == nil {
			continue
		}
		n := int64(b.Stats().KeyN)
		if string(name) == string(bucketPending) {
			d.pending.Store(n)
			last = max(last, b.Sequence())
		} else {
			d.dead.Store(n)
		}
		if k, _ := b.Cursor().Last(); k != nil {
			if seq, ok := keySeq(k); ok {
				last = max(last, seq)
			}
		}
	}
	d.seq.Store(last)
}

func hasBuckets(tx *bolt.Tx) bool {
	found := false
	_ = tx.ForEach(func([]byte, *bolt.Bucket) error { found = true; return nil })
	return found
}

// Path returns the file's path.
func (d *DB) Path() string { return d.path }

// Close closes the file.
func (d *DB) Close() error {
	d.shrinkMu.Lock()
	defer d.shrinkMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.db.Close()
}

// NextSeq gives out the next sequence number. Numbers are given in
// increasing order; one given to a record that is never written is a gap.
func (d *DB) NextSeq() uint64 { return d.seq.Add(1) }

// Pending returns the number of records in the pending bucket, as of the
// last transaction.
func (d *DB) Pending() int { return int(d.pending.Load()) }

// Dead returns the number of dead letters, as of the last transaction.
func (d *DB) Dead() int { return int(d.dead.Load()) }

// view and update run a transaction, turning a panic of bbolt on a
// corrupt page into an error.
func (d *DB) view(fn func(*bolt.Tx) error) (err error) {
	defer recoverCorrupt(d.path, &err)
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.db.View(fn)
}

func (d *DB) update(fn func(*bolt.Tx) error) (err error) {
	defer recoverCorrupt(d.path, &err)
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.db.Update(fn)
}

// updateUnjournaled is update for the writes other than Commit's, which a
// Shrink's journal does not carry: they wait for a Shrink to end.
func (d *DB) updateUnjournaled(fn func(*bolt.Tx) error) error {
	d.shrinkMu.Lock()
	defer d.shrinkMu.Unlock()
	return d.update(fn)
}

func recoverCorrupt(path string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("outbox %s is corrupt (move it away to start with an empty outbox): %v", path, r)
	}
}

// Check reports whether the file can be read: a read transaction, which
// competes with no writer.
func (d *DB) Check() error {
	return d.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketPending) == nil {
			return errors.New("the pending bucket is missing")
		}
		return nil
	})
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// keySeq decodes a key; ok is false for a key that is not 8 bytes.
func keySeq(k []byte) (uint64, bool) {
	if len(k) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}
