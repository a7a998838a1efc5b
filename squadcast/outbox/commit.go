package outbox

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// OpKind is what an Op does to a stored event.
type OpKind int8

const (
	// OpAppend writes a new pending record.
	OpAppend OpKind = iota
	// OpUpdate rewrites a pending record (after a failed attempt).
	OpUpdate
	// OpDelete deletes a pending record (delivered).
	OpDelete
	// OpDead moves a pending record to the dead letters, as Data.
	OpDead
)

// Op is one change to a stored event: Seq is its sequence number (from
// NextSeq), Data its encoded Record (not for OpDelete).
type Op struct {
	Kind OpKind
	Seq  uint64
	Data []byte
}

// Batch is what one transaction writes: the ops, in order, then the
// alert-state changes.
type Batch struct {
	Ops   []Op
	State []*StateChange
}

// StateError is the error of Batch.State[Index] in a transaction: bbolt
// refused what it writes (a value too large, say), which no retry
// changes. Commit the batch again without it.
type StateError struct {
	Index int
	Err   error
}

// Error returns the cause's message.
func (e *StateError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *StateError) Unwrap() error { return e.Err }

// appendFill is the FillPercent of the pending bucket in Commit's
// transactions. Its keys are sequence numbers, so new events are appended
// after the last one: bbolt's default (0.5) leaves every leaf it splits
// about half empty, which makes the file, and with it the pages of the
// memory-mapped file the daemon touches (its RSS), up to twice as large,
// for no gain, as no key is ever inserted before the last. Full leaves
// only split again when a retried event's record grows.
const appendFill = 1.0

// Commit writes b in one transaction, synced to disk before it returns.
// Nothing of b is written when it fails; a *StateError names a state
// change that bbolt refuses.
func (d *DB) Commit(b *Batch) error {
	var pending, dead int64
	d.wmu.Lock()
	defer d.wmu.Unlock()
	err := d.update(func(tx *bolt.Tx) error {
		var err error
		if pending, dead, err = writeOps(tx, b.Ops); err != nil {
			return err
		}
		for i, c := range b.State {
			if err := c.write(tx); err != nil {
				return &StateError{Index: i, Err: err}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write outbox %s: %w", d.path, err)
	}
	d.pending.Add(pending)
	d.dead.Add(dead)
	if d.journaling {
		d.journalBatch(b)
	}
	return nil
}

// journalBatch keeps b for Shrink's copy, unless the batches kept would
// pass journalMax: a Shrink that overlaps a new burst gives up, rather
// than hold the burst's events twice in memory and write them to the copy
// in one transaction with every other waiting. Called with d.wmu held.
func (d *DB) journalBatch(b *Batch) {
	if d.journalFull {
		return
	}
	n := int64(0)
	for _, op := range b.Ops {
		n += int64(len(op.Data)) + 16
	}
	for _, c := range b.State {
		n += int64(len(c.Options)) + 64*int64(len(c.Put)+len(c.Delete)+1)
	}
	if d.journalBytes+n > journalMax {
		d.journal, d.journalFull = nil, true
		return
	}
	d.journal = append(d.journal, b)
	d.journalBytes += n
}

// replay writes batches that were committed to another file, in order,
// in one transaction of dst.
func replay(dst *bolt.DB, batches []*Batch) error {
	return dst.Update(func(tx *bolt.Tx) error {
		for _, b := range batches {
			if _, _, err := writeOps(tx, b.Ops); err != nil {
				return err
			}
			for _, c := range b.State {
				if err := c.write(tx); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// writeOps writes ops in tx and returns how the counts of pending and dead
// records changed.
func writeOps(tx *bolt.Tx, ops []Op) (pending, dead int64, err error) {
	var last uint64
	pb, db := tx.Bucket(bucketPending), tx.Bucket(bucketDead)
	pb.FillPercent = appendFill
	for _, o := range ops {
		k := seqKey(o.Seq)
		switch o.Kind {
		case OpAppend:
			err = pb.Put(k, o.Data)
			pending++
			last = max(last, o.Seq)
		case OpUpdate:
			err = pb.Put(k, o.Data)
		case OpDelete:
			err = pb.Delete(k)
			pending--
		case OpDead:
			if err = pb.Delete(k); err == nil {
				err = db.Put(k, o.Data)
			}
			pending--
			dead++
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if last > pb.Sequence() {
		// Kept as the last number given out, as it was when the bucket's
		// NextSequence gave them.
		err = pb.SetSequence(last)
	}
	return pending, dead, err
}
