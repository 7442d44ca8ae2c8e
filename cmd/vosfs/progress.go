package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress shows the advance of a long step on a terminal, and only of a
// long one: it stays silent for its first second, then redraws one line.
// Where the output is not a terminal (a script, a log, a test suite) it
// shows nothing.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	last  time.Time
	shown bool
	width int
}

func newProgress(f *os.File) *progress {
	return &progress{w: f, tty: isTerminal(f), start: time.Now()}
}

// show displays msg if the step has lasted long enough and the previous
// display is old enough; final forces it once anything has been shown.
func (p *progress) show(msg string, final bool) {
	if !p.tty {
		return
	}
	now := time.Now()
	if now.Sub(p.start) < time.Second && !p.shown {
		return
	}
	if !(final && p.shown) && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last, p.shown = now, true
	pad := ""
	if n := p.width - len(msg); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.width = len(msg)
	fmt.Fprintf(p.w, "\r%s%s", msg, pad)
}

// done ends the line of a terminal display.
func (p *progress) done() {
	if p.shown {
		fmt.Fprintln(p.w)
	}
	p.shown = false
}
