package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"vosfs/blob"
	"vosfs/fs"
	"vosfs/pool"
)

// optionKind says whose a mount option is.
type optionKind int

const (
	kindVosfs optionKind = iota // vosfs's own
	kindFUSE                    // a generic FUSE option, with libfuse's meaning
	kindVFS                     // a kernel mount flag
	kindFstab                   // mount(8), fstab and systemd only: ignored
	kindTest                    // crash tests only
)

func (k optionKind) String() string {
	return [...]string{"vosfs", "FUSE", "VFS", "fstab", "test"}[k]
}

// mountConfig is what an -o list asks for.
type mountConfig struct {
	fs      fs.Options
	test    testOptions
	remount bool // change the flags of a live mount
}

// testOptions are the hidden mount options of crash tests, which change
// how the daemon opens the pool and are never meant for real use.
type testOptions struct {
	// powerCut, when set, opens the pool over blob.NewPowerCutFS with this
	// seed instead of the real files with O_DIRECT: writes not synced live
	// only in the daemon's memory, so killing the daemon loses them (or
	// tears them) as a power cut would.
	powerCut *int64
	// fault, when set (with powerCut), makes one operation of one blob
	// fail with EIO, through the power-cut simulator's injection.
	fault *testFault
}

// testFault is an injected blob failure: the n-th op on the blob file.
type testFault struct {
	blob string // wal.blob, meta.blob or data.blob
	op   blob.Op
	n    int
}

// parseFault parses BLOB:OP:N of the faultinject option.
func parseFault(v string) (*testFault, error) {
	bad := fmt.Errorf("faultinject takes BLOB:OP:N (BLOB wal.blob, meta.blob or data.blob; OP write, sync or read; N from 1)")
	parts := strings.Split(v, ":")
	if len(parts) != 3 {
		return nil, bad
	}
	f := &testFault{blob: parts[0]}
	switch parts[0] {
	case pool.WALFile, pool.MetaFile, pool.DataFile:
	default:
		return nil, bad
	}
	switch parts[1] {
	case "write":
		f.op = blob.OpWrite
	case "sync":
		f.op = blob.OpSync
	case "read":
		f.op = blob.OpRead
	default:
		return nil, bad
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil || n < 1 {
		return nil, bad
	}
	f.n = n
	return f, nil
}

// mountOption is one row of the table of mount options.
type mountOption struct {
	name string // the option; "x-*" is every option starting "x-"
	// arg names the value of an option written name=ARG ("" for a flag;
	// a trailing "?" when the value may be left out).
	arg     string
	kind    optionKind
	def     string // the default, "" when there is nothing to say
	meaning string
	// set applies the option, with its value; nil for an option that is
	// accepted and ignored.
	set func(c *mountConfig, v string) error
}

// takesValue reports whether the option is written name=VALUE.
func (o *mountOption) takesValue() bool { return o.arg != "" && !strings.HasSuffix(o.arg, "?") }

// prefix reports whether the row stands for every option starting with
// its name (less the "*").
func (o *mountOption) prefix() bool { return strings.HasSuffix(o.name, "*") }

// spelling is how the option is written in help: name, name=ARG or
// name[=ARG].
func (o *mountOption) spelling() string {
	switch {
	case o.arg == "":
		return o.name
	case strings.HasSuffix(o.arg, "?"):
		return o.name + "[=" + strings.TrimSuffix(o.arg, "?") + "]"
	}
	return o.name + "=" + o.arg
}

// flagOption is a row for an option that sets or clears a flag.
func flagOption(name string, kind optionKind, def, meaning string, apply func(o *fs.Options)) mountOption {
	return mountOption{name: name, kind: kind, def: def, meaning: meaning,
		set: func(c *mountConfig, _ string) error { apply(&c.fs); return nil }}
}

// ignored is a row for an option accepted and ignored.
func ignored(name, arg string, kind optionKind, meaning string) mountOption {
	return mountOption{name: name, arg: arg, kind: kind, meaning: meaning}
}

// The limits of the options taking sizes.
const (
	minThreshold = 512
	maxThreshold = 1 << 20
	minMaxWrite  = 4 << 10
	maxMaxWrite  = 1 << 20
)

// mountOptionTable is every mount option vosfs takes, in the order help
// lists them. Parsing, the refusal of an unknown option, the help of
// "vosfs mount" and the table of cmd/vosfs/README.md all come from it.
var mountOptionTable = []mountOption{
	{name: "commit", arg: "sync|async", kind: kindVosfs, def: "sync",
		meaning: "reply once a change is durable (sync), or once applied, with fsync waiting for durability (async)",
		set: func(c *mountConfig, v string) error {
			switch v {
			case "sync":
				c.fs.Commit = fs.CommitSync
			case "async":
				c.fs.Commit = fs.CommitAsync
			default:
				return fmt.Errorf("commit is sync or async")
			}
			return nil
		}},
	{name: "threshold", arg: "SIZE", kind: kindVosfs, def: "16 KiB",
		meaning: "writes from this size go to the data blob directly, smaller ones in the log record (512 B to 1 MiB)",
		set: func(c *mountConfig, v string) error {
			n, err := sizeIn(v, minThreshold, maxThreshold)
			c.fs.Threshold = n
			return err
		}},
	{name: "entry_timeout", arg: "SECS", kind: kindVosfs, def: "1",
		meaning: "how long the kernel caches names",
		set: func(c *mountConfig, v string) (err error) {
			c.fs.EntryTimeout, err = seconds(v)
			return err
		}},
	{name: "attr_timeout", arg: "SECS", kind: kindVosfs, def: "1",
		meaning: "how long the kernel caches attributes",
		set: func(c *mountConfig, v string) (err error) {
			c.fs.AttrTimeout, err = seconds(v)
			return err
		}},
	{name: "writeback_cache", arg: "on|off?", kind: kindVosfs, def: "off",
		meaning: "let the kernel cache writes and send them later in large writes: a write(2) is then done at close, fsync or write-back",
		set: func(c *mountConfig, v string) (err error) {
			c.fs.WritebackCache, err = onOff(v)
			return err
		}},
	flagOption("nowriteback_cache", kindVosfs, "", "writes go to the daemon as they are made",
		func(o *fs.Options) { o.WritebackCache = false }),
	{name: "max_write", arg: "SIZE", kind: kindVosfs, def: "1 MiB",
		meaning: "the largest write request (4 KiB to 1 MiB)",
		set: func(c *mountConfig, v string) (err error) {
			c.fs.MaxWrite, err = sizeIn(v, minMaxWrite, maxMaxWrite)
			return err
		}},
	flagOption("noallow_other", kindVosfs, "", "only the mounter gets in (undoes allow_other)",
		func(o *fs.Options) { o.AllowOther = false }),
	flagOption("debug", kindVosfs, "off", "log every FUSE request",
		func(o *fs.Options) { o.Debug = true }),

	{name: "fsname", arg: "NAME", kind: kindFUSE, def: "the pool directory",
		meaning: "the source /proc/mounts shows, which umount and findmnt take",
		set: func(c *mountConfig, v string) error {
			if v == "" {
				return fmt.Errorf("fsname wants a name")
			}
			c.fs.FsName = v
			return nil
		}},
	ignored("default_permissions", "", kindFUSE, "the kernel checks permissions against the modes, owners and ACLs vosfs reports (always on)"),
	{name: "subtype", arg: "TYPE", kind: kindFUSE, def: "vosfs",
		meaning: "the filesystem type is fuse.TYPE",
		set: func(c *mountConfig, v string) error {
			if v == "" || strings.ContainsAny(v, " \t\n/") {
				return fmt.Errorf("subtype wants a name without blanks or slashes")
			}
			c.fs.Subtype = v
			return nil
		}},
	flagOption("allow_other", kindFUSE, "on when root mounts",
		"every user gets in, with the permissions of the modes, as on a disk filesystem",
		func(o *fs.Options) { o.AllowOther, o.AllowRoot = true, false }),
	flagOption("allow_root", kindFUSE, "",
		"root gets in besides the mounter, nobody else (requests of others fail with EACCES)",
		func(o *fs.Options) { o.AllowOther, o.AllowRoot = false, true }),
	{name: "max_read", arg: "SIZE", kind: kindFUSE, def: "max_write",
		meaning: "the largest read request the kernel sends (4 KiB to max_write; only on mounts root makes without fusermount3)",
		set: func(c *mountConfig, v string) (err error) {
			c.fs.MaxRead, err = sizeIn(v, minMaxWrite, maxMaxWrite)
			return err
		}},
	{name: "blksize", arg: "SIZE", kind: kindFUSE, def: "4 KiB",
		meaning: "the st_blksize files report, the I/O size programs take as best (a power of two, 512 B to 1 MiB; the kernel uses libfuse's blksize only for block devices)",
		set: func(c *mountConfig, v string) (err error) {
			n, err := sizeIn(v, 512, 1<<20)
			if err == nil && n&(n-1) != 0 {
				err = fmt.Errorf("want a power of two")
			}
			c.fs.BlockSize = n
			return err
		}},
	ignored("user_id", "UID", kindFUSE, "the kernel's record of the mounter, which mount(8) passes back on a remount; vosfs sets it itself"),
	ignored("group_id", "GID", kindFUSE, "the kernel's record of the mounter's group, as user_id"),

	flagOption("ro", kindVFS, "", "read-only: the kernel and the daemon refuse every change with EROFS, reads leave access times alone",
		func(o *fs.Options) { o.ReadOnly = true }),
	flagOption("rw", kindVFS, "rw", "read-write",
		func(o *fs.Options) { o.ReadOnly = false }),
	{name: "remount", kind: kindVFS,
		meaning: "change the flags of a live mount (mount -o remount,ro MOUNTPOINT and back): ro and rw, and the kernel flags; the other options keep the values of the mount",
		set:     func(c *mountConfig, _ string) error { c.remount = true; return nil }},
	flagOption("nosuid", kindVFS, "nosuid", "set-user-ID and set-group-ID bits do not take effect",
		func(o *fs.Options) { o.Suid = false }),
	flagOption("suid", kindVFS, "", "set-user-ID and set-group-ID bits take effect",
		func(o *fs.Options) { o.Suid = true }),
	flagOption("nodev", kindVFS, "nodev", "device files do not open their devices",
		func(o *fs.Options) { o.Dev = false }),
	flagOption("dev", kindVFS, "", "device files open their devices",
		func(o *fs.Options) { o.Dev = true }),
	flagOption("noexec", kindVFS, "", "programs cannot be run from the filesystem",
		func(o *fs.Options) { o.NoExec = true }),
	flagOption("exec", kindVFS, "exec", "programs can be run from the filesystem",
		func(o *fs.Options) { o.NoExec = false }),
	flagOption("sync", kindVFS, "",
		"the kernel follows every write with an fsync, so writes are durable when they return also under commit=async (commit=sync makes every change durable on reply already)",
		func(o *fs.Options) { o.Sync = true }),
	flagOption("async", kindVFS, "async", "writes are durable as commit says (the VFS flag; not commit=async)",
		func(o *fs.Options) { o.Sync = false }),
	flagOption("dirsync", kindVFS, "",
		"changes of directories (create, remove, rename, link) are durable on reply also under commit=async",
		func(o *fs.Options) { o.DirSync = true }),
	flagOption("relatime", kindVFS, "relatime",
		"a read or an open for reading moves the access time when it is not after the last modification and change, or is a day old",
		func(o *fs.Options) { o.NoAtime, o.StrictAtime = false, false }),
	flagOption("atime", kindVFS, "", "the same as relatime",
		func(o *fs.Options) { o.NoAtime, o.StrictAtime = false, false }),
	flagOption("strictatime", kindVFS, "", "every read and open for reading moves the access time",
		func(o *fs.Options) { o.NoAtime, o.StrictAtime = false, true }),
	flagOption("norelatime", kindVFS, "", "the same as strictatime",
		func(o *fs.Options) { o.NoAtime, o.StrictAtime = false, true }),
	flagOption("noatime", kindVFS, "", "reads never move the access time",
		func(o *fs.Options) { o.NoAtime, o.StrictAtime = true, false }),
	flagOption("nodiratime", kindVFS, "", "listing a directory leaves its access time alone",
		func(o *fs.Options) { o.NoDiratime = true }),
	flagOption("diratime", kindVFS, "diratime", "listing a directory moves its access time as reads do",
		func(o *fs.Options) { o.NoDiratime = false }),
	flagOption("lazytime", kindVFS, "",
		"the kernel's lazytime flag; vosfs keeps times with each change (and an access time with its read) as before",
		func(o *fs.Options) { o.LazyTime = true }),
	flagOption("nolazytime", kindVFS, "nolazytime", "undoes lazytime",
		func(o *fs.Options) { o.LazyTime = false }),
	ignored("silent", "", kindVFS, "mount(8)'s: fewer kernel messages"),
	ignored("loud", "", kindVFS, "mount(8)'s: undoes silent"),

	ignored("defaults", "", kindFstab, "mount(8)'s: the defaults"),
	ignored("auto", "", kindFstab, "mount -a mounts it"),
	ignored("noauto", "", kindFstab, "mount -a leaves it"),
	ignored("nofail", "", kindFstab, "a missing pool is not an error at boot"),
	ignored("user", "", kindFstab, "any user may mount it"),
	ignored("nouser", "", kindFstab, "only root may mount it"),
	ignored("users", "", kindFstab, "any user may mount and unmount it"),
	ignored("owner", "", kindFstab, "the owner of the pool may mount it"),
	ignored("group", "", kindFstab, "the group of the pool may mount it"),
	ignored("_netdev", "", kindFstab, "mount it once the network is up"),
	ignored("user", "NAME", kindFstab, "the user mount(8) mounts it for"),
	ignored("comment", "TEXT", kindFstab, "a note for fstab's readers"),
	ignored("x-*", "", kindFstab, "options of systemd (x-systemd.automount, ...) and other tools"),

	{name: "powercut", arg: "SEED", kind: kindTest,
		meaning: "open the pool over a power-cut simulator with this seed: unsynced writes are lost if the daemon dies; never for data",
		set: func(c *mountConfig, v string) error {
			seed, err := strconv.ParseInt(v, 0, 64)
			if err != nil {
				return fmt.Errorf("powercut takes an integer seed")
			}
			c.test.powerCut = &seed
			return nil
		}},
	{name: "faultinject", arg: "BLOB:OP:N", kind: kindTest,
		meaning: "with powercut: the N-th write, sync or read of the blob fails with EIO (fail-stop tests)",
		set: func(c *mountConfig, v string) error {
			f, err := parseFault(v)
			c.test.fault = f
			return err
		}},
}

// lookupOption finds the row for the option o (written name or
// name=value) and returns it with its value.
func lookupOption(o string) (*mountOption, string, error) {
	name, v, hasV := strings.Cut(o, "=")
	var prefixRow, misused *mountOption
	for i := range mountOptionTable {
		row := &mountOptionTable[i]
		if row.prefix() {
			p := strings.TrimSuffix(row.name, "*")
			if strings.HasPrefix(o, p) && len(o) > len(p) {
				prefixRow = row
			}
			continue
		}
		if row.name != name {
			continue
		}
		if hasV == (row.arg != "") || (!hasV && !row.takesValue()) {
			return row, v, nil
		}
		misused = row
	}
	if prefixRow != nil {
		return prefixRow, "", nil
	}
	if misused != nil {
		if hasV {
			return nil, "", fmt.Errorf("mount option %q: %s takes no value", o, name)
		}
		return nil, "", fmt.Errorf("mount option %q wants a value: %s", o, misused.spelling())
	}
	return nil, "", fmt.Errorf("unknown mount option %q; valid options: %s", o, validOptions())
}

// validOptions lists the options the refusal of an unknown one names.
func validOptions() string {
	var names []string
	seen := map[string]bool{}
	for i := range mountOptionTable {
		row := &mountOptionTable[i]
		s := row.name
		if row.takesValue() {
			s += "="
		}
		if !seen[s] {
			seen[s] = true
			names = append(names, s)
		}
	}
	return strings.Join(names, ", ")
}

// parseMountConfig parses an -o list (comma-separated; empty items are
// skipped) over the defaults of a mount.
func parseMountConfig(list string) (mountConfig, error) {
	c := mountConfig{fs: defaultMountOptions()}
	for _, o := range strings.Split(list, ",") {
		if o == "" {
			continue
		}
		row, v, err := lookupOption(o)
		if err != nil {
			return c, err
		}
		if row.set == nil {
			continue
		}
		if err := row.set(&c, v); err != nil {
			return c, fmt.Errorf("mount option %q: %w", o, err)
		}
	}
	return c, nil
}

// parseMountOptions parses an -o list into the filesystem's options and
// the test options.
func parseMountOptions(list string) (fs.Options, testOptions, error) {
	c, err := parseMountConfig(list)
	return c.fs, c.test, err
}

// defaultMountOptions are the options of a mount with no -o. Mounted by
// root, the filesystem lets every user in (allow_other) and the kernel
// checks their permissions against the modes, as for a disk filesystem;
// without it, the kernel turns away every user but the mounter.
func defaultMountOptions() fs.Options {
	opts := fs.DefaultOptions()
	opts.AllowOther = os.Geteuid() == 0
	return opts
}

// sizeIn parses a size from lo to hi bytes.
func sizeIn(v string, lo, hi uint64) (int, error) {
	n, err := humanize.ParseBytes(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("want a size from %s to %s", humanize.IBytes(lo), humanize.IBytes(hi))
	}
	return int(n), nil
}

// seconds parses a non-negative number of seconds.
func seconds(v string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1e6 {
		return 0, fmt.Errorf("want seconds, from 0 to 1000000")
	}
	return time.Duration(f * float64(time.Second)), nil
}

// onOff parses the value of a switch: none (on), on, off, 1, 0, true,
// false.
func onOff(v string) (bool, error) {
	switch v {
	case "", "on", "1", "true":
		return true, nil
	case "off", "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("want on or off")
}

// optionsHelp is the table of options as "vosfs mount -h" shows it.
func optionsHelp() string {
	var sb strings.Builder
	for _, k := range []optionKind{kindVosfs, kindFUSE, kindVFS, kindFstab, kindTest} {
		fmt.Fprintf(&sb, "\n%s options:\n", kindTitle[k])
		for i := range mountOptionTable {
			row := &mountOptionTable[i]
			if row.kind != k {
				continue
			}
			text := row.meaning
			if row.def != "" {
				text += " (default: " + row.def + ")"
			}
			head := "  " + row.spelling()
			lines := wrap(text, 76-24)
			if len(head) > 22 {
				sb.WriteString(head + "\n")
				head = ""
			}
			for _, l := range lines {
				fmt.Fprintf(&sb, "%-24s%s\n", head, l)
				head = ""
			}
		}
	}
	return sb.String()
}

// kindTitle heads each kind's part of the help.
var kindTitle = map[optionKind]string{
	kindVosfs: "vosfs's own",
	kindFUSE:  "Generic FUSE",
	kindVFS:   "Kernel mount (VFS)",
	kindFstab: "fstab, mount(8) and systemd (accepted and ignored)",
	kindTest:  "Crash-test",
}

// wrap breaks text into lines of at most width characters (longer words
// stand alone).
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// optionsMarkdown is the table of options in cmd/vosfs/README.md.
func optionsMarkdown() string {
	rows := make([]*mountOption, len(mountOptionTable))
	for i := range mountOptionTable {
		rows[i] = &mountOptionTable[i]
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].kind < rows[j].kind })
	var sb strings.Builder
	sb.WriteString("| option | kind | default | meaning |\n|---|---|---|---|\n")
	esc := strings.NewReplacer("|", `\|`)
	for _, row := range rows {
		fmt.Fprintf(&sb, "| `%s` | %s | %s | %s |\n", esc.Replace(row.spelling()), row.kind, esc.Replace(row.def), esc.Replace(row.meaning))
	}
	return sb.String()
}
