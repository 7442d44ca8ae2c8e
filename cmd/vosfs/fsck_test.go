package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/pool"
	"vosfs/umem"
	"vosfs/wal"
)

// TestFsckRepairDamagedLog: a log record damaged in the middle of the log,
// acknowledged records after it, makes fsck refuse the pool naming the
// position; fsck --repair truncates there, saying how many records and bytes
// it drops, and the pool is then clean.
func TestFsckRepairDamagedLog(t *testing.T) {
	dir := mkfsSmall(t)
	p, err := pool.Open(blob.NewOSFS(false), dir, pool.Options{CheckpointInterval: time.Hour, DirtyLimit: 1 << 40, HighWater: 0.99})
	require.NoError(t, err)
	// Transactions that write free arena space only (the checker does not
	// look there): 150 records of 8 KiB, one batch each.
	l := p.Layout()
	var ids []wal.ID
	for i := 0; i < 150; i++ {
		id, err := p.Update(context.Background(), func(tx *pool.Tx) error {
			return tx.Write(l.ArenaOffset+l.ArenaSize-8192, bytes.Repeat([]byte{byte(i)}, 8192))
		})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	st := p.Stats().Log
	require.NoError(t, p.Shutdown(pool.ShutdownLogFlush)) // no checkpoint: every record is live
	require.ErrorIs(t, p.Close(), pool.ErrShutdown)

	f, err := os.OpenFile(filepath.Join(dir, pool.WALFile), os.O_RDWR, 0)
	require.NoError(t, err)
	off := int64(wal.RingOffset + uint64(ids[20]+500)%st.RingSize)
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{b[0] ^ 1}, off)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	r := vosfs(t, "fsck", dir)
	t.Logf("fsck: %s", r.stderr)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, fmt.Sprintf("the record at log position %d is damaged (checksum mismatch)", ids[20]))
	assert.Contains(t, r.stderr, fmt.Sprintf("the last intact record before it is at %d, the first intact record after it at %d", ids[19], ids[21]))
	assert.Contains(t, r.stderr, "vosfs fsck --repair")

	dropped := uint64(st.Next - ids[20])
	r = vosfs(t, "fsck", "--repair", dir)
	t.Logf("fsck --repair: %s", r.stdout)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Contains(t, r.stdout, fmt.Sprintf("%s: repaired: the log was truncated at position %d (checksum mismatch;", dir, ids[20]))
	assert.Contains(t, r.stdout, fmt.Sprintf("dropping 129 intact record(s) and %d bytes of log\n", dropped))
	assert.Contains(t, r.stdout, dir+": clean")

	r = vosfs(t, "fsck", dir)
	require.Equal(t, 0, r.code, "%v", r)
	assert.NotContains(t, r.stdout, "repaired")

	// The truncation kept the records before the damage, and only them.
	p, err = pool.Open(blob.NewOSFS(false), dir, pool.Options{})
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.View(func(rd umem.Reader) error {
		got, err := rd.Bytes(l.ArenaOffset+l.ArenaSize-8192, 8192)
		require.NoError(t, err)
		require.Equal(t, bytes.Repeat([]byte{19}, 8192), got)
		return nil
	}))
}
