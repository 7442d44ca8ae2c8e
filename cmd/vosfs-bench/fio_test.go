package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// fio-seqwrite.json is fio's output for seqwrite.fio (64 MiB): one job.
func TestParseFioSeqwrite(t *testing.T) {
	r, version, err := parseFio(readTestdata(t, "fio-seqwrite.json"))
	require.NoError(t, err)
	assert.Equal(t, "fio-3.33", version)
	assert.Equal(t, 1, r.Jobs)
	assert.Equal(t, 699050666.0, r.BWBytes)
	assert.InDelta(t, 666.666667, r.IOPS, 1e-6)
	assert.Equal(t, int64(64<<20), r.IOBytes)
	assert.Equal(t, int64(64), r.IOs)
	assert.Equal(t, 444416.0, r.P50NS)
	assert.Equal(t, 7176192.0, r.P99NS)
	assert.Zero(t, r.SyncP99NS)
	assert.True(t, r.hasLatency())
	assert.Equal(t, r.BWBytes, r.value(unitBandwidth))
	assert.Equal(t, r.IOPS, r.value(unitIOPS))
}

// fio-randwrite-fsync-4.json is fio's output for randwrite-fsync-4.fio
// without group_reporting: four jobs, whose rates add up.
func TestParseFioSumsJobs(t *testing.T) {
	r, _, err := parseFio(readTestdata(t, "fio-randwrite-fsync-4.json"))
	require.NoError(t, err)
	assert.Equal(t, 4, r.Jobs)
	assert.Equal(t, 45136713.0, r.BWBytes)
	assert.InDelta(t, 11019.705843, r.IOPS, 1e-6)
	assert.Equal(t, int64(45215744), r.IOBytes)
	assert.Equal(t, int64(11039), r.IOs)
	// Latencies are those of the slowest job.
	assert.Equal(t, 3376.0, r.P50NS)
	assert.Equal(t, 146432.0, r.P99NS)
	assert.Equal(t, 905216.0, r.SyncP99NS)
}

func TestParseFioNoiseBeforeJSON(t *testing.T) {
	out := append([]byte("note: both iodepth >= 1 and synchronous I/O engine are selected\n"), readTestdata(t, "fio-seqwrite.json")...)
	r, _, err := parseFio(out)
	require.NoError(t, err)
	assert.Equal(t, 699050666.0, r.BWBytes)
}

func TestParseFioErrors(t *testing.T) {
	for name, out := range map[string]string{
		"empty":    "",
		"not json": "fio: failed to open file\n",
		"no jobs":  `{"fio version": "fio-3.33", "jobs": []}`,
		"job error": `{"jobs": [{"jobname": "seqwrite", "error": 28,
			"write": {"io_bytes": 4096, "total_ios": 1, "bw_bytes": 1, "iops": 1}}]}`,
		"no io":     `{"jobs": [{"jobname": "seqwrite", "error": 0}]}`,
		"truncated": `{"jobs": [{"jobname": "seqwrite", `,
	} {
		_, _, err := parseFio([]byte(out))
		assert.Error(t, err, name)
	}
	_, _, err := parseFio([]byte(`{"jobs": [{"jobname": "seqwrite", "error": 28, "write": {"total_ios": 1}}]}`))
	assert.ErrorContains(t, err, "no space left on device")
}

func TestJobOrder(t *testing.T) {
	pos := map[string]int{}
	for i, j := range allJobs {
		pos[j.Name] = i
		_, err := os.Stat(filepath.Join("..", "..", "testdata", "fio", j.Name+".fio"))
		assert.NoError(t, err, "job file of %s", j.Name)
	}
	for _, pair := range [][2]string{
		{"seqwrite", "seqread"}, {"randwrite", "randread"},
		{"filecreate", "filestat"}, {"filestat", "filedelete"},
	} {
		assert.Less(t, pos[pair[0]], pos[pair[1]], "%s runs before %s", pair[0], pair[1])
	}
	for _, j := range allJobs {
		if j.Needs != "" {
			m, ok := maker(j)
			if assert.True(t, ok, "a job makes what %s needs", j.Name) {
				assert.Less(t, pos[m.Name], pos[j.Name])
			}
		}
	}
}
