package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vosfs/fs"
)

func TestParseMountOptionsPowerCut(t *testing.T) {
	opts, test, err := parseMountOptions("commit=async,powercut=42,noatime")
	require.NoError(t, err)
	assert.Equal(t, fs.CommitAsync, opts.Commit)
	require.NotNil(t, test.powerCut)
	assert.Equal(t, int64(42), *test.powerCut)

	opts, test, err = parseMountOptions("commit=sync")
	require.NoError(t, err)
	assert.Equal(t, fs.CommitSync, opts.Commit)
	assert.Nil(t, test.powerCut)

	opts, test, err = parseMountOptions("")
	require.NoError(t, err)
	assert.Equal(t, defaultMountOptions(), opts)
	assert.Nil(t, test.powerCut)

	for _, bad := range []string{"powercut", "powercut=", "powercut=x", "powercut=1,frobnicate"} {
		_, _, err := parseMountOptions(bad)
		assert.Error(t, err, "%q accepted", bad)
	}
}
