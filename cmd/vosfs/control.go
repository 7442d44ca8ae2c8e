package main

// The control socket: the daemon listens on POOLDIR/vosfs.sock (mode 0600)
// and answers one request per connection. The client sends a command line,
// "stats"; the daemon answers one line, the JSON of fs.Stats, or
// "error MESSAGE".

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"vosfs/fs"
)

const (
	sockName = "vosfs.sock"
	// maxSockPath is the longest path a unix socket address holds.
	maxSockPath = 107
	// controlTimeout bounds one request, either side.
	controlTimeout = 10 * time.Second
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
	stats   func() fs.Stats
	logger  *log.Logger
	wg      sync.WaitGroup
}

// listenControl starts serving the control socket of the pool in dir. The
// caller holds the pool's lock, so a socket file already there is a dead
// daemon's and is replaced.
func listenControl(dir string, stats func() fs.Stats, logger *log.Logger) (io.Closer, error) {
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
	c := &controlServer{ln: ln, release: release, stats: stats, logger: logger}
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
	switch cmd := strings.TrimSpace(line); cmd {
	case "stats":
		b, err := json.Marshal(c.stats())
		if err != nil {
			fmt.Fprintf(conn, "error %v\n", err)
			return
		}
		conn.Write(append(b, '\n'))
	default:
		fmt.Fprintf(conn, "error unknown command %q\n", cmd)
	}
}

// Close stops serving and removes the socket.
func (c *controlServer) Close() error {
	err := c.ln.Close()
	c.wg.Wait()
	c.release()
	return err
}

// queryStats asks the daemon that has the pool in dir mounted for its
// counters.
func queryStats(dir string) (fs.Stats, error) {
	var st fs.Stats
	addr, release, err := sockAddr(dir)
	if err != nil {
		return st, err
	}
	defer release()
	conn, err := net.DialTimeout("unix", addr, controlTimeout)
	if err != nil {
		return st, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(controlTimeout))
	if _, err := io.WriteString(conn, "stats\n"); err != nil {
		return st, err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return st, fmt.Errorf("control socket: %w", err)
	}
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		return st, fmt.Errorf("daemon: %s", strings.TrimSpace(msg))
	}
	if err := json.Unmarshal([]byte(line), &st); err != nil {
		return st, fmt.Errorf("control socket: bad answer: %w", err)
	}
	return st, nil
}
