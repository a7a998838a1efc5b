package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The states of an Entry.
const (
	// StatePending is an event still to deliver.
	StatePending = "pending"
	// StateDead is a dead letter: given up after a permanent failure or its max age.
	StateDead = "dead"
	// StateCorrupt is a record that cannot be decoded; drop it (DB.Drop).
	StateCorrupt = "corrupt"
)

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

// Stored is a decoded pending record and its sequence number.
type Stored struct {
	Seq    uint64
	Record *Record
}

// Loaded is what LoadFrom read.
type Loaded struct {
	// Events are the records read, oldest first.
	Events []Stored
	// Next is the sequence number after the last record read (the one
	// given to LoadFrom when there was none).
	Next uint64
	// Bad counts the records that could not be decoded (left in the
	// file, not returned); BadErr is the first one's *RecordError.
	Bad    int
	BadErr error
}

// LoadFrom reads up to n pending records whose sequence numbers are from
// on, oldest first.
func (d *DB) LoadFrom(from uint64, n int) (Loaded, error) {
	l := Loaded{Next: from}
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPending)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(from)); k != nil && len(l.Events)+l.Bad < n; k, v = c.Next() {
			ev, err := d.decodeStored(k, v)
			if seq, ok := keySeq(k); ok {
				l.Next = seq + 1
			}
			if err != nil {
				if l.Bad == 0 {
					l.BadErr = err
				}
				l.Bad++
				continue
			}
			l.Events = append(l.Events, ev)
		}
		return nil
	})
	if err != nil {
		return Loaded{Next: from}, fmt.Errorf("load outbox %s: %w", d.path, err)
	}
	return l, nil
}

// LoadStart reads the oldest pending records, at most limit of them, as
// the daemon does at start. Next is then where to read the rest from (0
// when all were read). A record that cannot be decoded among those read
// fails it with its *RecordError; the rest are decoded when LoadFrom
// reads them.
func (d *DB) LoadStart(limit int) (Loaded, error) {
	l, err := d.LoadFrom(0, limit)
	switch {
	case err != nil:
		return Loaded{}, err
	case l.Bad > 0:
		return Loaded{}, l.BadErr
	case len(l.Events) == d.Pending():
		l.Next = 0
	}
	return l, nil
}

// decodeStored decodes a pending record; its error is a *RecordError.
func (d *DB) decodeStored(k, v []byte) (Stored, error) {
	seq, ok := keySeq(k)
	if !ok {
		return Stored{}, &RecordError{Path: d.path, State: StatePending, Err: fmt.Errorf("key %x is not a sequence number", k)}
	}
	rec, err := d.decode(v)
	if err != nil {
		return Stored{}, &RecordError{Path: d.path, State: StatePending, Seq: seq, Err: err}
	}
	return Stored{Seq: seq, Record: rec}, nil
}

// Entry describes one event of the outbox, for listing. It holds neither
// the webhook URL nor the body.
type Entry struct {
	// State is StatePending, StateDead or StateCorrupt.
	State string
	// Seq is the event's sequence number (the key Drop takes).
	Seq uint64
	// Endpoint is the endpoint's name ("default", "inline:host").
	Endpoint string
	// Incident is the alert id (Squadcast's incident id).
	Incident string
	// Level is the event's alert level, one of Levels.
	Level string
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
	// URL is the record's webhook URL, for the caller to redact LastError
	// with; never show it.
	URL string
}

// List returns every event of the outbox: the pending ones, then the dead
// letters, each oldest first. A record that cannot be decoded is listed
// with State StateCorrupt and the reason in LastError.
func (d *DB) List() ([]Entry, error) {
	var out []Entry
	err := d.view(func(tx *bolt.Tx) error {
		for _, bk := range []struct {
			name  []byte
			state string
		}{{bucketPending, StatePending}, {bucketDead, StateDead}} {
			b := tx.Bucket(bk.name)
			if b == nil {
				continue
			}
			if err := b.ForEach(func(k, v []byte) error {
				out = append(out, d.entry(bk.state, k, v))
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list outbox %s: %w", d.path, err)
	}
	return out, nil
}

func (d *DB) entry(state string, k, v []byte) Entry {
	seq, ok := keySeq(k)
	if !ok {
		return Entry{State: StateCorrupt, LastError: fmt.Sprintf("%s key %x is not a sequence number", state, k)}
	}
	rec, err := d.decode(v)
	if err != nil {
		return Entry{State: StateCorrupt, Seq: seq, LastError: state + " record: " + err.Error()}
	}
	return Entry{
		State:       state,
		Seq:         seq,
		Endpoint:    rec.Endpoint,
		Incident:    rec.Incident,
		Level:       rec.Level,
		Task:        rec.Task,
		Format:      rec.Format,
		Created:     rec.Created,
		Attempts:    rec.Attempts,
		LastError:   rec.LastError,
		NextAttempt: rec.NextAttempt,
		DeadReason:  rec.DeadReason,
		DeadAt:      rec.DeadAt,
		Size:        len(rec.Body),
		URL:         rec.URL,
	}
}

// RetryDead moves every dead letter back to the pending events, with its
// attempts, last error and dead reason cleared, keeping its sequence number
// (so it goes before the later events of its incident still pending). It
// returns how many moved. A corrupt dead letter stops it with a
// *RecordError, and nothing moves.
func (d *DB) RetryDead() (int, error) {
	n := 0
	err := d.updateUnjournaled(func(tx *bolt.Tx) error {
		dead, pending := tx.Bucket(bucketDead), tx.Bucket(bucketPending)
		type kv struct{ k, v []byte }
		var moves []kv
		if err := dead.ForEach(func(k, v []byte) error {
			seq, ok := keySeq(k)
			if !ok {
				return &RecordError{Path: d.path, State: StateDead, Err: fmt.Errorf("key %x is not a sequence number", k)}
			}
			rec, err := d.decode(v)
			if err != nil {
				return &RecordError{Path: d.path, State: StateDead, Seq: seq, Err: err}
			}
			rec.Attempts, rec.LastError, rec.NextAttempt = 0, "", time.Time{}
			rec.DeadReason, rec.DeadAt = "", time.Time{}
			b, err := rec.Encode()
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
		return 0, fmt.Errorf("retry dead letters in outbox %s: %w", d.path, err)
	}
	d.pending.Add(int64(n))
	d.dead.Add(-int64(n))
	return n, nil
}

// Drop deletes the events with the given sequence numbers, pending, dead
// or corrupt, and returns the ones it found, in the order given.
func (d *DB) Drop(seqs ...uint64) ([]uint64, error) {
	var dropped []uint64
	var pending, dead int64
	err := d.updateUnjournaled(func(tx *bolt.Tx) error {
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
				if string(name) == string(bucketPending) {
					pending++
				} else {
					dead++
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
		return nil, fmt.Errorf("drop events from outbox %s: %w", d.path, err)
	}
	d.pending.Add(-pending)
	d.dead.Add(-dead)
	return dropped, nil
}
