package outbox

import (
	bolt "go.etcd.io/bbolt"
)

// copier copies what a read transaction sees into another file, as
// bbolt.Compact does (buckets, nested buckets, keys and sequence numbers
// as they are, leaves filled), from a transaction rather than a DB, so
// that Shrink can copy a snapshot while writes go on. It commits every
// txMaxSize bytes, and keeps the bucket it writes to between keys.
type copier struct {
	dst       *bolt.DB
	txMaxSize int64

	tx   *bolt.Tx
	size int64
	path [][]byte     // the bucket keys to cur, from the root
	cur  *bolt.Bucket // nil: to look up again (a new transaction)
}

// copyTx copies what src sees into dst, which should be empty.
func copyTx(src *bolt.Tx, dst *bolt.DB, txMaxSize int64) (err error) {
	c := &copier{dst: dst, txMaxSize: txMaxSize}
	if c.tx, err = dst.Begin(true); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = c.tx.Rollback()
		}
	}()
	err = src.ForEach(func(name []byte, b *bolt.Bucket) error {
		if _, err := c.tx.CreateBucket(name); err != nil {
			return err
		}
		return c.bucket(b, [][]byte{name})
	})
	if err != nil {
		return err
	}
	return c.tx.Commit()
}

// bucket copies the keys and nested buckets of b, whose copy exists at path.
func (c *copier) bucket(b *bolt.Bucket, path [][]byte) error {
	if err := c.at(path); err != nil {
		return err
	}
	if err := c.cur.SetSequence(b.Sequence()); err != nil {
		return err
	}
	return b.ForEach(func(k, v []byte) error {
		if err := c.grow(int64(len(k) + len(v))); err != nil {
			return err
		}
		if err := c.at(path); err != nil {
			return err
		}
		if v != nil {
			return c.cur.Put(k, v)
		}
		if _, err := c.cur.CreateBucket(k); err != nil {
			return err
		}
		sub := append(append([][]byte(nil), path...), k)
		if err := c.bucket(b.Bucket(k), sub); err != nil {
			return err
		}
		c.cur = nil // back to b's copy
		return nil
	})
}

// at makes cur the copy of the bucket at path.
func (c *copier) at(path [][]byte) error {
	if c.cur != nil && samePath(c.path, path) {
		return nil
	}
	b := c.tx.Bucket(path[0])
	for _, k := range path[1:] {
		b = b.Bucket(k)
	}
	b.FillPercent = 1.0
	c.cur, c.path = b, path
	return nil
}

// grow counts n more bytes, committing first when they would pass txMaxSize.
func (c *copier) grow(n int64) error {
	if c.size+n <= c.txMaxSize || c.size == 0 {
		c.size += n
		return nil
	}
	if err := c.tx.Commit(); err != nil {
		return err
	}
	tx, err := c.dst.Begin(true)
	if err != nil {
		return err
	}
	c.tx, c.size, c.cur = tx, n, nil
	return nil
}

func samePath(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if string(a[i]) != string(b[i]) {
			return false
		}
	}
	return true
}
