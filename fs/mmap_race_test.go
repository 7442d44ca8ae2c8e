package fs

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The mmap/write race runs its two threads in a child process: a thread
// of the daemon's own process stopped in a page fault on the mount would
// hold up the Go runtime's stop-the-world, which waits for it while the
// daemon's goroutines that would serve the fault are stopped.
const mmapRaceEnv = "VOSFS_TEST_MMAP_RACE"

func TestMain(m *testing.M) {
	if p := os.Getenv(mmapRaceEnv); p != "" {
		if err := mmapRaceChild(p); err != nil {
			fmt.Fprintln(os.Stderr, "mmap race:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const (
	racePages  = 64
	raceRounds = 300
)

// raceFill is the content of a page written in a round: its page number
// and round in every 8 bytes, so any torn or lost page shows.
func raceFill(b []byte, page, round int) {
	for o := 0; o+8 <= len(b); o += 8 {
		binary.LittleEndian.PutUint64(b[o:], uint64(page)<<32|uint64(round))
	}
}

// mmapRaceChild races two threads on one sparse file: one writes the even
// pages through a shared mapping, the other the odd pages with pwrite,
// round after round, each page rewritten with its round; then msync.
func mmapRaceChild(path string) error {
	fd, err := unix.Open(path, unix.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	mem, err := unix.Mmap(fd, 0, racePages*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	defer unix.Munmap(mem)
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		for r := 1; r <= raceRounds; r++ {
			for p := 0; p < racePages; p += 2 {
				raceFill(mem[p*4096:(p+1)*4096], p, r)
			}
			if r%50 == 0 {
				if err := unix.Msync(mem, unix.MS_ASYNC); err != nil {
					errc <- err
					return
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		buf := make([]byte, 4096)
		for r := 1; r <= raceRounds; r++ {
			for p := 1; p < racePages; p += 2 {
				raceFill(buf, p, r)
				if _, err := unix.Pwrite(fd, buf, int64(p)*4096); err != nil {
					errc <- err
					return
				}
			}
		}
	}()
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return unix.Msync(mem, unix.MS_SYNC)
}

// TestMmapWriteRace: a thread writing through a mapping and one writing
// with pwrite, racing on neighbouring pages of one file, finish; the file
// then holds each page's last round (the model), read before and after a
// remount, with no hole left; and the mount unmounts (nothing left busy).
func TestMmapWriteRace(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("race")
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(racePages*4096)) // a hole to fill
	require.NoError(t, f.Close())

	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), mmapRaceEnv+"="+p)
	out := make(chan error, 1)
	var buf []byte
	go func() {
		var err error
		buf, err = cmd.CombinedOutput()
		out <- err
	}()
	select {
	case err := <-out:
		require.NoError(t, err, "child: %s", buf)
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the racing threads did not finish in 2 minutes")
	}

	want := make([]byte, racePages*4096)
	for pg := 0; pg < racePages; pg++ {
		raceFill(want[pg*4096:(pg+1)*4096], pg, raceRounds)
	}
	check := func(when string) {
		t.Helper()
		requireContent(t, want, p)
		fd, err := unix.Open(p, unix.O_RDONLY, 0)
		require.NoError(t, err)
		defer unix.Close(fd)
		require.EqualValues(t, racePages*4096, fstat(t, fd).Size, when)
		// Every page is data now.
		off, err := unix.Seek(fd, 0, unix.SEEK_HOLE)
		require.NoError(t, err)
		require.EqualValues(t, racePages*4096, off, when)
	}
	check("after the race")
	m.remount()
	check("after a remount")
}
