package outbox

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketListers holds, per Kapacitor task, the identity (Kapacitor's
// server ID) of the Kapacitor that last listed the task: key task ID →
// identity. The daemon counts a task as deleted only when that same
// Kapacitor no longer lists it. It is created by the first SetListers, so
// a file written before it existed reads as "no task listed yet". As a
// top-level bucket, every copy of the file's buckets (CompactIfSparse)
// keeps it.
var bucketListers = []byte("kapacitor_listers")

// Listers returns, for each task recorded, the identity of the Kapacitor
// that last listed it; an empty map when none is recorded.
func (d *DB) Listers() (map[string]string, error) {
	out := map[string]string{}
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketListers)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if v != nil {
				out[string(k)] = string(v)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read Kapacitor's task listers in outbox %s: %w", d.path, err)
	}
	return out, nil
}

// SetListers records, in one transaction, the identity of the Kapacitor
// that listed each task of set, and forgets the tasks of del.
func (d *DB) SetListers(set map[string]string, del []string) error {
	if len(set) == 0 && len(del) == 0 {
		return nil
	}
	err := d.updateUnjournaled(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketListers)
		if err != nil {
			return err
		}
		for task, id := range set {
			if err := b.Put([]byte(task), []byte(id)); err != nil {
				return fmt.Errorf("task %s: %w", task, err)
			}
		}
		for _, task := range del {
			if err := b.Delete([]byte(task)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write Kapacitor's task listers in outbox %s: %w", d.path, err)
	}
	return nil
}

// forgetListerIfNoState deletes task's lister record when none of its
// nodes has saved state any more: dropping a task's state drops it.
func forgetListerIfNoState(tx *bolt.Tx, task string) error {
	b := tx.Bucket(bucketListers)
	if b == nil || b.Get([]byte(task)) == nil {
		return nil
	}
	if nodes := tx.Bucket(bucketState); nodes != nil {
		prefix := taskPrefix(task)
		if k, _ := nodes.Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
			return nil
		}
	}
	return b.Delete([]byte(task))
}
