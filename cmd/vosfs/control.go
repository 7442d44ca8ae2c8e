package main

// The control socket: the daemon listens on POOLDIR/vosfs.sock (mode 0600)
// and answers one request per connection. The client sends a command line:
//
//	stats              one line, the JSON of fs.Stats
//	profile KIND SECS  "ok N", a newline, then N bytes: a pprof profile of
//	                   the daemon (cpu: sampled over SECS seconds; mutex,
//	                   block: contention during SECS seconds; heap,
//	                   goroutine: a snapshot at the end of SECS seconds)
//	readonly on|off    "ok": the filesystem refuses changes from now on (a
//	                   remount read-only), or takes them again
//
// or, for any of them, one line "error MESSAGE".

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"vosfs/fs"
)

const (
	sockName = "vosfs.sock"
	// maxSockPath is the longest path a unix socket address holds.
	maxSockPath = 107
	// controlTimeout bounds one request, either side, beyond the duration
	// of a profile it asks for.
	controlTimeout = 10 * time.Second
	// maxProfileSeconds bounds the duration of one profile.
	maxProfileSeconds = 600
)

// sockAddr returns an address of the socket in dir short enough for a unix
// socket: its path, or for a long path one through a descriptor of dir,
// which release closes once the address is no longer needed.
func sockAddr(dir string) (addr string, release func(), err error) {
	path := filepath.Join(dir, sockName)
	if len(path) <= maxSockPath {
		return path, func() {}, nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), sockName), func() { d.Close() }, nil
}

// controlServer serves the control socket of a mounted pool.
type controlServer struct {
	ln      *net.UnixListener
	release func()
	fs      controlled
	logger  *log.Logger
	wg      sync.WaitGroup
}

// controlled is what the control socket reaches in the daemon.
type controlled interface {
	Stats() fs.Stats
	SetReadOnly(ro bool) error
}

// listenControl starts serving the control socket of the pool in dir. The
// caller holds the pool's lock, so a socket file already there is a dead
// daemon's and is replaced.
func listenControl(dir string, target controlled, logger *log.Logger) (io.Closer, error) {
	path := filepath.Join(dir, sockName)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	addr, release, err := sockAddr(dir)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		release()
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		release()
		return nil, err
	}
	c := &controlServer{ln: ln, release: release, fs: target, logger: logger}
	c.wg.Add(1)
	go c.serve()
	return c, nil
}

func (c *controlServer) serve() {
	defer c.wg.Done()
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.logger.Printf("control socket: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.handle(conn)
		}()
	}
}

func (c *controlServer) handle(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(controlTimeout))
	line, err := bufio.NewReader(io.LimitReader(conn, 256)).ReadString('\n')
	if err != nil {
		return
	}
	f := strings.Fields(line)
	switch {
	case len(f) == 1 && f[0] == "stats":
		b, err := json.Marshal(c.fs.Stats())
		if err != nil {
			fmt.Fprintf(conn, "error %v\n", err)
			return
		}
		conn.Write(append(b, '\n'))
	case len(f) == 3 && f[0] == "profile":
		secs, err := strconv.Atoi(f[2])
		if err != nil || secs < 1 || secs > maxProfileSeconds {
			fmt.Fprintf(conn, "error profile duration %q is not 1..%d seconds\n", f[2], maxProfileSeconds)
			return
		}
		conn.SetDeadline(time.Now().Add(time.Duration(secs)*time.Second + controlTimeout))
		var buf bytes.Buffer
		if err := profile(&buf, f[1], time.Duration(secs)*time.Second); err != nil {
			fmt.Fprintf(conn, "error %v\n", err)
			return
		}
		fmt.Fprintf(conn, "ok %d\n", buf.Len())
		conn.Write(buf.Bytes())
	case len(f) == 2 && f[0] == "readonly" && (f[1] == "on" || f[1] == "off"):
		if err := c.fs.SetReadOnly(f[1] == "on"); err != nil {
			fmt.Fprintf(conn, "error %v\n", err)
			return
		}
		c.logger.Printf("read-only %s (remount)", f[1])
		fmt.Fprintln(conn, "ok")
	default:
		fmt.Fprintf(conn, "error unknown command %q\n", strings.TrimSpace(line))
	}
}

// profileMu keeps profiles one at a time: the CPU profiler and the
// contention sampling rates are process-wide.
var profileMu sync.Mutex

// profile writes a pprof profile of this process of the kind asked for,
// covering the next d.
func profile(w io.Writer, kind string, d time.Duration) error {
	if !profileMu.TryLock() {
		return errors.New("another profile is running")
	}
	defer profileMu.Unlock()
	switch kind {
	case "cpu":
		if err := pprof.StartCPUProfile(w); err != nil {
			return err
		}
		time.Sleep(d)
		pprof.StopCPUProfile()
		return nil
	case "mutex":
		old := runtime.SetMutexProfileFraction(1)
		time.Sleep(d)
		runtime.SetMutexProfileFraction(old)
	case "block":
		runtime.SetBlockProfileRate(1)
		time.Sleep(d)
		runtime.SetBlockProfileRate(0)
	case "heap", "goroutine":
		time.Sleep(d)
	default:
		return fmt.Errorf("unknown profile kind %q (cpu, mutex, block, heap, goroutine)", kind)
	}
	return pprof.Lookup(kind).WriteTo(w, 0)
}

// Close stops serving and removes the socket.
func (c *controlServer) Close() error {
	err := c.ln.Close()
	c.wg.Wait()
	c.release()
	return err
}

// controlRequest sends one command line to the daemon that has the pool in
// dir mounted and returns its first answer line without "ok " or the error
// it sent, and the connection to read what follows from. extra is how much
// longer than controlTimeout the answer may take.
func controlRequest(dir, cmd string, extra time.Duration) (string, *bufio.Reader, func(), error) {
	addr, release, err := sockAddr(dir)
	if err != nil {
		return "", nil, nil, err
	}
	defer release()
	conn, err := net.DialTimeout("unix", addr, controlTimeout)
	if err != nil {
		return "", nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(controlTimeout + extra))
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		conn.Close()
		return "", nil, nil, err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		conn.Close()
		return "", nil, nil, fmt.Errorf("control socket: %w", err)
	}
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		conn.Close()
		return "", nil, nil, fmt.Errorf("daemon: %s", strings.TrimSpace(msg))
	}
	return strings.TrimSpace(line), r, func() { conn.Close() }, nil
}

// queryStats asks the daemon that has the pool in dir mounted for its
// counters.
func queryStats(dir string) (fs.Stats, error) {
	var st fs.Stats
	line, _, done, err := controlRequest(dir, "stats", 0)
	if err != nil {
		return st, err
	}
	done()
	if err := json.Unmarshal([]byte(line), &st); err != nil {
		return st, fmt.Errorf("control socket: bad answer: %w", err)
	}
	return st, nil
}

// queryProfile asks the daemon that has the pool in dir mounted for a
// profile of kind over d and copies it to w.
func queryProfile(dir, kind string, d time.Duration, w io.Writer) (int64, error) {
	secs := int(d / time.Second)
	line, r, done, err := controlRequest(dir, fmt.Sprintf("profile %s %d", kind, secs), d)
	if err != nil {
		return 0, err
	}
	defer done()
	n, err := strconv.ParseInt(strings.TrimPrefix(line, "ok "), 10, 64)
	if err != nil || !strings.HasPrefix(line, "ok ") || n < 0 {
		return 0, fmt.Errorf("control socket: bad answer %q", line)
	}
	m, err := io.Copy(w, io.LimitReader(r, n))
	if err == nil && m != n {
		err = fmt.Errorf("control socket: profile cut short at %d of %d bytes", m, n)
	}
	return m, err
}

// setReadOnly tells the daemon that has the pool in dir mounted to refuse
// changes (ro) or take them again.
func setReadOnly(dir string, ro bool) error {
	arg := "off"
	if ro {
		arg = "on"
	}
	line, _, done, err := controlRequest(dir, "readonly "+arg, 0)
	if err != nil {
		return err
	}
	done()
	if line != "ok" {
		return fmt.Errorf("control socket: bad answer %q", line)
	}
	return nil
}
