package main

import (
	"path/filepath"
	"time"

	"github.com/dustin/go-humanize"
)

// absDir returns the absolute, cleaned form of a directory argument.
func absDir(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.Clean(a), nil
}

// fmtDuration formats a duration to a precision people read.
func fmtDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Minute:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// count formats n with its noun, singular or plural ("1 object",
// "1,024 objects").
func count(n uint64, singular, plural string) string {
	if n == 1 {
		return "1 " + singular
	}
	return humanize.Comma(int64(n)) + " " + plural
}

// exactBytes formats a limit: humanized, with the exact count when the
// humanized form rounds it.
func exactBytes(n uint64) string {
	s := humanize.IBytes(n)
	if v, err := parseSize(s); err != nil || v != n {
		s += " (" + humanize.Comma(int64(n)) + " bytes)"
	}
	return s
}

// bytesOf formats "done / total", or just done when the total is unknown.
func bytesOf(done, total uint64) string {
	if total == 0 {
		return humanize.IBytes(done)
	}
	return humanize.IBytes(done) + " / " + humanize.IBytes(total)
}
