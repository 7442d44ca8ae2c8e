// Package blob is the narrow I/O interface under the storage engine: the three
// pool blobs (log, metadata, data) are files reached only through FS and File.
//
// Three implementations exist. OSFS opens real files, with O_DIRECT and
// aligned buffers (github.com/ncw/directio) where the host filesystem
// supports it, and fdatasync for Sync. MemFS keeps files in memory and
// remembers which 4 KiB blocks were synced; Crash returns the state a power
// cut would leave (synced blocks plus a seeded random share of the unsynced
// ones, so a multi-block write can be lost, kept or torn), and Inject makes
// the Nth operation of a kind fail (EIO, ENOSPC, short write), on any file
// or on a chosen one. A failed Sync drops the unsynced blocks, as Linux
// writeback does, so that a retried sync that succeeds has made nothing
// durable. The engine is tested against MemFS. PowerCutFS, for
// out-of-process crash tests, keeps unsynced writes in the process's memory
// over real files, so that killing the process loses them as a power cut
// would; it injects faults and drops on a failed Sync the same way.
//
// All offsets and lengths given to File by the engine are multiples of
// BlockSize; the OS implementation relies on it for O_DIRECT.
package blob
