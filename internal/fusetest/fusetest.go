// Package fusetest holds what the tests that mount a filesystem share.
package fusetest

import (
	"os"
	"testing"
)

// Require skips a test that mounts when this machine cannot (no /dev/fuse,
// or not root), except under CI (the CI variable set), where a mount test
// that cannot run is a failure.
func Require(t testing.TB) {
	t.Helper()
	why := ""
	if _, err := os.Stat("/dev/fuse"); err != nil {
		why = "no /dev/fuse"
	} else if os.Geteuid() != 0 {
		why = "not root"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: CI requires FUSE", why)
	}
	t.Skipf("%s: mount tests need FUSE and root", why)
}
