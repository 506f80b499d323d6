package nfsfs

import (
	"github.com/nas-topology/nas-topology/nasimage/access"

	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Squash is the /etc/exports user mapping.
type Squash = access.Squash

// Squash modes.
const (
	RootSquash   = access.RootSquash   // uid/gid 0 become anonuid/anongid (default)
	NoRootSquash = access.NoRootSquash // ids are used as given
	AllSquash    = access.AllSquash    // every id becomes anonuid/anongid
)

// Options are an export's options in /etc/exports terms.
type Options struct {
	ReadOnly bool // ro; rw is the default
	// Sync (the default) is knfsd's: UNSTABLE writes are made durable by
	// COMMIT, FILE_SYNC/DATA_SYNC ones before their reply. Async never
	// syncs and answers every WRITE and COMMIT as stable: a crash of the
	// node loses writes the client believes are stable.
	Sync     bool
	Squash   Squash
	AnonUID  uint32
	AnonGID  uint32
	FSID     uint64
	Networks []netip.Prefix // allowed clients; empty: everyone
	// Insecure (insecure_squash) skips the credential checks: every caller
	// may do what nasd's uid may. Owners are still recorded.
	Insecure bool
	// Owner is the owner clients see of a file that has no recorded one
	// (the files from Windows, the export root); nil: the file's real one.
	Owner *[2]uint32
}

// Mapping is the squash mapping the front door checks credentials with,
// nil with insecure_squash.
func (o Options) Mapping() *access.Mapping {
	if o.Insecure {
		return nil
	}
	m := o.mapping()
	return &m
}

func (o Options) mapping() access.Mapping {
	return access.Mapping{Squash: o.Squash, AnonUID: o.AnonUID, AnonGID: o.AnonGID}
}

// DefaultOptions are the /etc/exports defaults: rw, sync, root_squash,
// anonuid=anongid=65534.
func DefaultOptions() Options {
	return Options{Sync: true, Squash: RootSquash, AnonUID: 65534, AnonGID: 65534}
}

// ParseOptions parses a comma-separated option list such as
// "ro,async,all_squash,anonuid=1000,anongid=1000,fsid=3" on top of the
// defaults. Unknown options are errors, not ignored.
func ParseOptions(s string) (Options, error) {
	o := DefaultOptions()
	for _, opt := range strings.Split(s, ",") {
		opt = strings.TrimSpace(opt)
		key, val, hasVal := strings.Cut(opt, "=")
		var err error
		switch {
		case opt == "":
		case opt == "ro":
			o.ReadOnly = true
		case opt == "rw":
			o.ReadOnly = false
		case opt == "sync":
			o.Sync = true
		case opt == "async":
			o.Sync = false
		case opt == "root_squash":
			o.Squash = RootSquash
		case opt == "no_root_squash":
			o.Squash = NoRootSquash
		case opt == "all_squash":
			o.Squash = AllSquash
		case opt == "insecure_squash":
			o.Insecure = true
		case hasVal && key == "anonuid":
			o.AnonUID, err = parseID(val)
		case hasVal && key == "anongid":
			o.AnonGID, err = parseID(val)
		case hasVal && key == "fsid":
			o.FSID, err = strconv.ParseUint(val, 10, 64)
		default:
			return o, fmt.Errorf("export option %q: unknown (known: ro, rw, sync, async, root_squash, no_root_squash, all_squash, insecure_squash, anonuid=N, anongid=N, fsid=N)", opt)
		}
		if err != nil {
			return o, fmt.Errorf("export option %q: %w", opt, err)
		}
	}
	return o, nil
}

func parseID(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err
}

// ParseNetworks parses a comma-separated list of CIDRs or addresses
// ("10.0.0.0/8,192.168.49.2"); "*" or "" means everyone (nil).
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "" || n == "*":
			continue
		case strings.Contains(n, "/"):
			p, err := netip.ParsePrefix(n)
			if err != nil {
				return nil, fmt.Errorf("allowed network %q: %w", n, err)
			}
			out = append(out, p.Masked())
		default:
			a, err := netip.ParseAddr(n)
			if err != nil {
				return nil, fmt.Errorf("allowed network %q: %w", n, err)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out, nil
}

// String renders the options as /etc/exports does.
func (o Options) String() string {
	parts := []string{map[bool]string{true: "ro", false: "rw"}[o.ReadOnly],
		map[bool]string{true: "sync", false: "async"}[o.Sync]}
	parts = append(parts, [...]string{"root_squash", "no_root_squash", "all_squash"}[o.Squash])
	if o.Insecure {
		parts = append(parts, "insecure_squash")
	}
	parts = append(parts, fmt.Sprintf("anonuid=%d", o.AnonUID), fmt.Sprintf("anongid=%d", o.AnonGID),
		fmt.Sprintf("fsid=%d", o.FSID))
	return strings.Join(parts, ",")
}

// mapOwner applies the squash mode to an owner change.
func (o Options) mapOwner(uid, gid int) (int, int) {
	c := o.mapping().Map(access.Cred{UID: uint32(uid), GID: uint32(gid)})
	return int(c.UID), int(c.GID)
}
