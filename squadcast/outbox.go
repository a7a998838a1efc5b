package squadcast

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// The outbox is a bbolt file, OutboxFile in the data dir:
//
//	bucket "meta":    key "version" → the layout version in ASCII ("1")
//	bucket "pending": key seq → record, for events still to deliver
//	bucket "dead":    key seq → record, for dead letters
//
// seq is the event's sequence number, 8 bytes big-endian, from the
// "pending" bucket's NextSequence: it gives every event a place in one
// global order, kept when an event moves between buckets. A record is a
// JSON object (see record) whose "v" field is its encoding version.
// Events are written when published (many per transaction), rewritten
// after each failed attempt, and deleted after a 2xx or moved to "dead".

// OutboxFile is the name of the outbox file in the data dir.
const OutboxFile = "outbox.db"

// OutboxPath returns the path of the outbox file in dataDir.
func OutboxPath(dataDir string) string { return filepath.Join(dataDir, OutboxFile) }

// outboxVersion is the layout version this package reads and writes;
// recordVersion is the version of the record encoding.
const (
	outboxVersion = 1
	recordVersion = 2
)

// outboxLockTimeout is how long opening the outbox waits for another
// process's lock before failing with ErrOutboxInUse.
const outboxLockTimeout = time.Second

var (
	bucketMeta    = []byte("meta")
	bucketPending = []byte("pending")
	bucketDead    = []byte("dead")
	keyVersion    = []byte("version")
)

// ErrOutboxInUse means another process (a running daemon) holds the outbox file.
var ErrOutboxInUse = errors.New("the data dir is in use by a running daemon; stop it first")

// The states of an OutboxEntry.
const (
	// StatePending is an event still to deliver.
	StatePending = "pending"
	// StateDead is a dead letter: given up after a permanent failure or MaxAge.
	StateDead = "dead"
	// StateCorrupt is a record that cannot be decoded; drop it (Outbox.Drop).
	StateCorrupt = "corrupt"
)

// record is an event as stored, version 1. The URL is a secret: it is
// stored so that an inline .url survives restarts, and never shown.
type record struct {
	Version int `json:"v"`
	// Endpoint is the endpoint's name as logged ("default", "inline:host").
	Endpoint string `json:"endpoint"`
	// Settings names the configured endpoint whose timeout and rate limit
	// apply, "" for none.
	Settings string    `json:"settings,omitempty"`
	URL      string    `json:"url"`
	Format   string    `json:"format"`
	Incident string    `json:"incident"`
	Level    udf.Level `json:"level"`
	Task     string    `json:"task,omitempty"`
	Created  time.Time `json:"created"`
	Attempts int       `json:"attempts"`
	// LastError is the redacted error of the last failed attempt.
	LastError   string    `json:"last_error,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// DeadReason and DeadAt are set on dead letters.
	DeadReason string    `json:"dead_reason,omitempty"`
	DeadAt     time.Time `json:"dead_at,omitzero"`
	// Body is the rendered payload, sent as is. Version 2 stores it as
	// JSON text in Payload (a third smaller than base64, so more records
	// per page of the file), less the newline that ends a rendered body
	// (PayloadNewline says it was there); a body that would not read back
	// byte for byte that way goes in base64 in Base64Body, as version 1
	// stored every body.
	Body           []byte          `json:"-"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	PayloadNewline bool            `json:"payload_nl,omitempty"`
	Base64Body     []byte          `json:"body,omitempty"`
}

func encodeRecord(r *record) ([]byte, error) {
	r.Version = recordVersion
	stored := *r
	text, newline := bytes.CutSuffix(r.Body, []byte("\n"))
	if isCompact(text) {
		stored.Payload, stored.PayloadNewline = text, newline
	} else {
		stored.Base64Body = r.Body
	}
	b, err := json.Marshal(&stored)
	if err != nil {
		return nil, fmt.Errorf("encode outbox record: %w", err)
	}
	return b, nil
}

// isCompact reports whether the JSON text b is as json.Marshal writes
// json.RawMessage (compacted, with <, > and & escaped): only then is it
// read back byte for byte, as the body must be.
func isCompact(b []byte) bool {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil || !bytes.Equal(buf.Bytes(), b) {
		return false
	}
	return bytes.IndexAny(b, "<>&\u2028\u2029") < 0
}

// decodeRecord decodes and checks a stored record. Its errors never
// contain the record's URL.
func decodeRecord(b []byte) (*record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		// Syntax and type errors name a character or a field, never a value.
		return nil, fmt.Errorf("not a valid record: %w", err)
	}
	r.Body = r.Base64Body
	if len(r.Payload) > 0 {
		r.Body = r.Payload
		if r.PayloadNewline {
			r.Body = append(r.Body, '\n')
		}
	}
	r.Payload, r.PayloadNewline, r.Base64Body = nil, false, nil
	switch {
	case r.Version != 1 && r.Version != recordVersion:
		return nil, fmt.Errorf("record version %d is not supported (want %d)", r.Version, recordVersion)
	case r.Endpoint == "":
		return nil, errors.New("endpoint is empty")
	case !validFormat(r.Format):
		return nil, fmt.Errorf("format %q is unknown", r.Format)
	case len(r.Body) == 0:
		return nil, errors.New("body is empty")
	case r.Created.IsZero():
		return nil, errors.New("created time is missing")
	case r.Attempts < 0:
		return nil, fmt.Errorf("attempts %d is negative", r.Attempts)
	}
	if _, err := parseWebhookURL(r.URL); err != nil {
		return nil, fmt.Errorf("url %w", err)
	}
	return &r, nil
}

// appendFill is the FillPercent of the pending bucket in the committer's
// transactions. Its keys are sequence numbers, so new events are appended
// after the last one: bbolt's default (0.5) leaves every leaf it splits
// about half empty, which makes the file, and with it the pages of the
// memory-mapped file the daemon touches (its RSS), up to twice as large,
// for no gain, as no key is ever inserted before the last. Full leaves
// only split again when a retried event's record grows.
const appendFill = 1.0

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

// Outbox is the outbox file. The Sender keeps one open while it runs; the
// outbox commands open it (read-only to list) while the daemon is stopped.
type Outbox struct {
	db   *bolt.DB
	path string
}

// OpenOutbox opens the outbox file at path. A writable open creates the
// file (0600) when it is missing; a read-only one fails with an error
// wrapping fs.ErrNotExist. When another process holds the file, it fails
// after a second with an error wrapping ErrOutboxInUse. A file that is not
// an outbox, or is corrupt, gives an error naming the file.
func OpenOutbox(path string, readOnly bool) (o *Outbox, err error) {
	if readOnly {
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("open outbox %s: %w (has the daemon run with this data dir?)", path, fs.ErrNotExist)
			}
			return nil, fmt.Errorf("open outbox %s: %w", path, err)
		}
	}
	defer recoverCorrupt(path, &err)
	// The free pages are not written with every commit (NoFreelistSync;
	// opening the file finds them by scanning it), and are kept in maps of
	// free runs rather than one sorted array: an outbox that held a burst
	// has tens of thousands, and every commit wrote their list (8 bytes a
	// page) and merged the pages it freed into a new array, allocating
	// about 200KB a commit for 12,000 free pages; now a few KB
	// (TestCommitCostIndependentOfFreePages).
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: outboxLockTimeout, ReadOnly: readOnly,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open outbox %s: %w", path, ErrOutboxInUse)
		}
		if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
			return nil, fmt.Errorf("open outbox %s: the file is corrupt or not an outbox (move it away to start with an empty outbox): %w", path, err)
		}
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	o = &Outbox{db: db, path: path}
	if err := o.init(readOnly); err != nil {
		db.Close()
		return nil, err
	}
	return o, nil
}

// init checks the layout version, creating the buckets of a new file.
func (o *Outbox) init(readOnly bool) error {
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
			if err := meta.Put(keyVersion, []byte(strconv.Itoa(outboxVersion))); err != nil {
				return err
			}
		}
		v, err := strconv.Atoi(string(meta.Get(keyVersion)))
		if err != nil {
			return errors.New("the file's layout version is missing or unreadable")
		}
		if v != outboxVersion {
			return fmt.Errorf("the file's layout version %d is not supported (want %d)", v, outboxVersion)
		}
		if !tx.Writable() {
			return nil
		}
		for _, b := range [][]byte{bucketPending, bucketDead} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if readOnly {
		err = o.view(check)
	} else {
		err = o.update(check)
	}
	if err != nil {
		return fmt.Errorf("open outbox %s: %w", o.path, err)
	}
	return nil
}

func hasBuckets(tx *bolt.Tx) bool {
	found := false
	_ = tx.ForEach(func([]byte, *bolt.Bucket) error { found = true; return nil })
	return found
}

// Close closes the file.
func (o *Outbox) Close() error { return o.db.Close() }

// view and update run a transaction, turning a panic of bbolt on a
// corrupt page into an error.
func (o *Outbox) view(fn func(*bolt.Tx) error) (err error) {
	defer recoverCorrupt(o.path, &err)
	return o.db.View(fn)
}

func (o *Outbox) update(fn func(*bolt.Tx) error) (err error) {
	defer recoverCorrupt(o.path, &err)
	return o.db.Update(fn)
}

func recoverCorrupt(path string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("outbox %s is corrupt (move it away to start with an empty outbox): %v", path, r)
	}
}

// RecordError reports a stored record that cannot be decoded.
type RecordError struct {
	// Path is the outbox file.
	Path string
	// State is the bucket: StatePending or StateDead.
	State string
	// Seq is the record's sequence number.
	Seq uint64
	// Err says what is wrong.
	Err error
}

// Error returns a message like "outbox /d/outbox.db: pending event 42 is
// corrupt: ...; drop it with 'kapacitor-squadcast outbox drop'".
func (e *RecordError) Error() string {
	return fmt.Sprintf("outbox %s: %s event %d is corrupt: %v; drop it with 'kapacitor-squadcast outbox drop --data-dir %s %d'",
		e.Path, e.State, e.Seq, e.Err, filepath.Dir(e.Path), e.Seq)
}

// Unwrap returns the cause.
func (e *RecordError) Unwrap() error { return e.Err }

// storedEvent is a decoded pending record and its sequence number.
type storedEvent struct {
	seq uint64
	rec *record
}

// loadPending reads the outbox at start: the oldest pending events, at
// most limit of them, the number of pending events in all, the number of
// dead letters, and the sequence number to load the rest from (0 when all
// were loaded). A record that cannot be decoded among those loaded fails
// it (a RecordError); the rest are decoded when loadPendingFrom reads them.
func (o *Outbox) loadPending(limit int) (evs []storedEvent, total, dead int, next uint64, err error) {
	err = o.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketDead); b != nil {
			dead = b.Stats().KeyN
		}
		if b := tx.Bucket(bucketPending); b != nil {
			total = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		return nil, 0, 0, 0, fmt.Errorf("load outbox %s: %w", o.path, err)
	}
	evs, next, bad, badErr, err := o.loadPendingFrom(0, limit)
	switch {
	case err != nil:
		return nil, 0, 0, 0, err
	case bad > 0:
		return nil, 0, 0, 0, badErr
	case len(evs) == total:
		next = 0
	}
	return evs, total, dead, next, nil
}

// loadPendingFrom reads up to n pending events whose sequence numbers are
// from on, oldest first, and returns the sequence number after the last
// one it read (or from, when there was none). A record it cannot decode is
// not returned but counted in bad, with the first one's error in badErr.
func (o *Outbox) loadPendingFrom(from uint64, n int) (evs []storedEvent, next uint64, bad int, badErr error, err error) {
	next = from
	err = o.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPending)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(from)); k != nil && len(evs)+bad < n; k, v = c.Next() {
			ev, err := o.decodeStored(k, v)
			if seq, ok := keySeq(k); ok {
				next = seq + 1
			}
			if err != nil {
				if bad == 0 {
					badErr = err
				}
				bad++
				continue
			}
			evs = append(evs, ev)
		}
		return nil
	})
	if err != nil {
		return nil, from, 0, nil, fmt.Errorf("load outbox %s: %w", o.path, err)
	}
	return evs, next, bad, badErr, nil
}

// decodeStored decodes a pending record; its error is a *RecordError.
func (o *Outbox) decodeStored(k, v []byte) (storedEvent, error) {
	seq, ok := keySeq(k)
	if !ok {
		return storedEvent{}, &RecordError{Path: o.path, State: StatePending, Err: fmt.Errorf("key %x is not a sequence number", k)}
	}
	rec, err := decodeRecord(v)
	if err != nil {
		return storedEvent{}, &RecordError{Path: o.path, State: StatePending, Seq: seq, Err: err}
	}
	return storedEvent{seq: seq, rec: rec}, nil
}

// OutboxEntry describes one event of the outbox, for listing. It holds
// neither the webhook URL nor the body.
type OutboxEntry struct {
	// State is StatePending, StateDead or StateCorrupt.
	State string
	// Seq is the event's sequence number (the key Drop takes).
	Seq uint64
	// Endpoint is the endpoint's name ("default", "inline:host").
	Endpoint string
	// Incident is the alert id (Squadcast's incident id).
	Incident string
	// Level is the event's alert level.
	Level udf.Level
	// Task is the Kapacitor task that produced the event.
	Task string
	// Format is the payload format.
	Format string
	// Created is when the event was published.
	Created time.Time
	// Attempts is the number of delivery attempts made.
	Attempts int
	// LastError is the last failed attempt's error (redacted); for a
	// corrupt record, what is wrong with it.
	LastError string
	// NextAttempt is when a pending event is tried next (zero: at once).
	NextAttempt time.Time
	// DeadReason says why a dead letter was given up.
	DeadReason string
	// DeadAt is when it was given up.
	DeadAt time.Time
	// Size is the body's size in bytes.
	Size int
}

// List returns every event of the outbox: the pending ones, then the dead
// letters, each oldest first. A record that cannot be decoded is listed
// with State StateCorrupt and the reason in LastError.
func (o *Outbox) List() ([]OutboxEntry, error) {
	var out []OutboxEntry
	err := o.view(func(tx *bolt.Tx) error {
		for _, bk := range []struct {
			name  []byte
			state string
		}{{bucketPending, StatePending}, {bucketDead, StateDead}} {
			b := tx.Bucket(bk.name)
			if b == nil {
				continue
			}
			if err := b.ForEach(func(k, v []byte) error {
				seq, ok := keySeq(k)
				if !ok {
					out = append(out, OutboxEntry{State: StateCorrupt, LastError: fmt.Sprintf("%s key %x is not a sequence number", bk.state, k)})
					return nil
				}
				rec, err := decodeRecord(v)
				if err != nil {
					out = append(out, OutboxEntry{State: StateCorrupt, Seq: seq, LastError: bk.state + " record: " + err.Error()})
					return nil
				}
				out = append(out, OutboxEntry{
					State:       bk.state,
					Seq:         seq,
					Endpoint:    rec.Endpoint,
					Incident:    rec.Incident,
					Level:       rec.Level,
					Task:        rec.Task,
					Format:      rec.Format,
					Created:     rec.Created,
					Attempts:    rec.Attempts,
					LastError:   redactText(rec.LastError, urlSecrets(rec.URL)),
					NextAttempt: rec.NextAttempt,
					DeadReason:  rec.DeadReason,
					DeadAt:      rec.DeadAt,
					Size:        len(rec.Body),
				})
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list outbox %s: %w", o.path, err)
	}
	return out, nil
}

// RetryDead moves every dead letter back to the pending events, with its
// attempts, last error and dead reason cleared, keeping its sequence number
// (so it goes before the later events of its incident still pending). It
// returns how many moved. A corrupt dead letter stops it with a
// *RecordError, and nothing moves.
func (o *Outbox) RetryDead() (int, error) {
	n := 0
	err := o.update(func(tx *bolt.Tx) error {
		dead, pending := tx.Bucket(bucketDead), tx.Bucket(bucketPending)
		if dead == nil || pending == nil {
			return nil
		}
		type kv struct{ k, v []byte }
		var moves []kv
		if err := dead.ForEach(func(k, v []byte) error {
			seq, ok := keySeq(k)
			if !ok {
				return &RecordError{Path: o.path, State: StateDead, Err: fmt.Errorf("key %x is not a sequence number", k)}
			}
			rec, err := decodeRecord(v)
			if err != nil {
				return &RecordError{Path: o.path, State: StateDead, Seq: seq, Err: err}
			}
			rec.Attempts, rec.LastError, rec.NextAttempt = 0, "", time.Time{}
			rec.DeadReason, rec.DeadAt = "", time.Time{}
			b, err := encodeRecord(rec)
			if err != nil {
				return err
			}
			moves = append(moves, kv{bytes.Clone(k), b})
			return nil
		}); err != nil {
			return err
		}
		for _, m := range moves {
			if err := pending.Put(m.k, m.v); err != nil {
				return err
			}
			if err := dead.Delete(m.k); err != nil {
				return err
			}
		}
		n = len(moves)
		return nil
	})
	if err != nil {
		var re *RecordError
		if errors.As(err, &re) {
			return 0, err
		}
		return 0, fmt.Errorf("retry dead letters in outbox %s: %w", o.path, err)
	}
	return n, nil
}

// Drop deletes the events with the given sequence numbers, pending, dead
// or corrupt, and returns the ones it found, in the order given.
func (o *Outbox) Drop(seqs ...uint64) ([]uint64, error) {
	var dropped []uint64
	err := o.update(func(tx *bolt.Tx) error {
		for _, seq := range seqs {
			k := seqKey(seq)
			found := false
			for _, name := range [][]byte{bucketPending, bucketDead} {
				b := tx.Bucket(name)
				if b == nil || b.Get(k) == nil {
					continue
				}
				if err := b.Delete(k); err != nil {
					return err
				}
				found = true
			}
			if found {
				dropped = append(dropped, seq)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("drop events from outbox %s: %w", o.path, err)
	}
	return dropped, nil
}
