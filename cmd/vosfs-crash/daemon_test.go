package main

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A running process is alive; killed and not yet reaped (a zombie with no
// thread left) it is not; reaped, it is not either.
func TestAlive(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	require.True(t, alive(pid))
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool { return !alive(pid) }, 5*time.Second, 5*time.Millisecond)
	_ = cmd.Wait()
	require.False(t, alive(pid))
	require.NoError(t, waitExit(pid, time.Second))
}
