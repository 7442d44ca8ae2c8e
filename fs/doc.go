// Package fs is the POSIX filesystem of vosfs, served through FUSE
// (github.com/hanwen/go-fuse/v2) over the versioned object store.
//
// One inode is one object; its attributes, symlink target and data live in
// that object (dkey "i" holds the attributes, dkey "d" the data array). A
// directory's entries are the dkeys of a companion object (the inode's ID
// with the entries bit set) that name the child's object, and extended
// attributes are the dkeys of another companion object. Because attributes
// belong to the inode and not to the entry, hard links are entries naming
// the same object, with the link count in the inode.
//
// Every modifying operation is exactly one transaction, so after a crash it
// is there entirely or not at all (rename included). POSIX preconditions
// are predicates or reads of the transaction; a conflict with a concurrent
// operation replays or retries it. Attributes that many operations bump —
// times, link counts, sizes grown by writes — change through merge
// operators, so parallel creates in one directory or parallel writers to
// one file do not conflict.
//
// By default an operation replies after its transaction is durable
// (commit=sync); with commit=async it replies once applied, and fsync,
// fdatasync and syncfs wait for everything before them.
//
// Storage errors become errno values in one place (errno.go).
package fs
