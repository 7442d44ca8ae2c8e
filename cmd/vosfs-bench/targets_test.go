package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const mountinfo = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
45 22 0:40 / /var/tmp/b/vosfs-sync/mnt rw,nosuid,nodev,relatime shared:25 - fuse.vosfs /var/tmp/b/vosfs-sync/pool rw,user_id=0,group_id=0
46 22 0:41 / /var/tmp/with\040space/mnt rw,relatime shared:26 - fuse.loopback /var/tmp/with\040space/orig rw
`

func TestParseMountinfo(t *testing.T) {
	ms, err := parseMountinfo(strings.NewReader(mountinfo))
	require.NoError(t, err)
	require.Len(t, ms, 3)
	assert.Equal(t, mount{point: "/", fstype: "ext4", source: "/dev/vda"}, ms[0])
	assert.Equal(t, mount{point: "/var/tmp/b/vosfs-sync/mnt", fstype: "fuse.vosfs", source: "/var/tmp/b/vosfs-sync/pool"}, ms[1])
	assert.Equal(t, mount{point: "/var/tmp/with space/mnt", fstype: "fuse.loopback", source: "/var/tmp/with space/orig"}, ms[2])
}

func TestUnescapeMountinfo(t *testing.T) {
	assert.Equal(t, "a b\tc\\d", unescapeMountinfo(`a\040b\011c\134d`))
	assert.Equal(t, `trailing\04`, unescapeMountinfo(`trailing\04`))
	assert.Equal(t, "plain", unescapeMountinfo("plain"))
}

func TestProcessAlive(t *testing.T) {
	assert.True(t, processAlive(1))
	assert.False(t, processAlive(1<<30))
}
