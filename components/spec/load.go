package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Getter returns the raw config value of a key (without namespace) as Pulumi
// hands it to programs: strings as-is, objects and arrays as JSON.
type Getter func(key string) (value string, ok bool)

// FieldError is a config problem, tied to the field that causes it.
type FieldError struct {
	Field string // e.g. "servers[nas-input-3].fsid", "cluster.servers.nas-input-1.nodePort"
	Msg   string
}

func (e *FieldError) Error() string { return Namespace + ":" + e.Field + ": " + e.Msg }

// errs collects field errors so one preview reports every problem at once.
type errs struct {
	list []error
	// failed are the fields that could not be decoded (or whose key was
	// misspelt): validation does not report them, or anything inside them, again.
	failed []string
}

// add records a problem of a field, unless the field failed to decode.
func (e *errs) add(field, format string, args ...any) {
	for _, f := range e.failed {
		if field == f || strings.HasPrefix(field, f+".") || strings.HasPrefix(field, f+"[") {
			return
		}
	}
	e.list = append(e.list, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// bad records a problem that leaves the field without a value.
func (e *errs) bad(field, format string, args ...any) {
	e.add(field, format, args...)
	e.failed = append(e.failed, field)
}

func (e *errs) err() error {
	if len(e.list) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration (%d problem(s)):\n%w", len(e.list), errors.Join(e.list...))
}

// Load parses and validates the config of one stack. Nothing is registered
// before this returns without error. Every problem is reported, decoding ones
// included: a value that does not decode leaves its field empty, and the
// other fields are still checked.
func Load(get Getter) (*Config, error) {
	e := &errs{}
	c := &Config{}

	c.NasNamespace = str(get, KeyNasNamespace)
	c.StorageClassName = str(get, KeyStorageClassName)
	c.ReclaimPolicy = str(get, KeyReclaimPolicy)
	decodeKey(get, KeyMountOptions, &c.MountOptions, e)
	decodeKey(get, KeyLabels, &c.Labels, e)
	c.Servers = decodeServers(get, e)

	c.Target = Target(str(get, KeyTarget))
	c.KubeContext = str(get, KeyKubeContext)
	if raw, ok := get(KeyManageNamespaces); ok {
		b, err := strconv.ParseBool(raw)
		if err != nil {
			e.bad(KeyManageNamespaces, "must be true or false, got %q", raw)
		}
		c.ManageNamespaces = b
	}
	switch c.Target {
	case TargetCluster:
		c.Cluster = &Cluster{}
		if !decodeKey(get, KeyCluster, c.Cluster, e) {
			e.bad(KeyCluster, "is required when target is %q", TargetCluster)
		}
		c.Cluster.applyDefaults()
	case TargetExternal:
		c.External = &External{}
		if !decodeKey(get, KeyExternal, c.External, e) {
			e.bad(KeyExternal, "is required when target is %q", TargetExternal)
		}
	}

	validate(c, e)
	return c, e.err()
}

func str(get Getter, key string) string {
	v, _ := get(key)
	return v
}

// decodeKey decodes a key's JSON value into out with exact field names (see
// decodeStrict). It reports whether the key was set.
func decodeKey(get Getter, key string, out any, e *errs) bool {
	raw, ok := get(key)
	if !ok || raw == "" {
		return false
	}
	decodeStrict([]byte(raw), out, key, e)
	return true
}

// decodeServers decodes server by server, each named by its name in messages
// (servers[nas-input-1].fsid), so that the message still points at the right
// server after servers are added or reordered.
func decodeServers(get Getter, e *errs) []Server {
	raw, ok := get(KeyServers)
	if !ok || raw == "" {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &items); err != nil {
		e.bad(KeyServers, "must be a list of servers, got %s", describeJSON([]byte(raw)))
		return nil
	}
	names := make([]string, len(items))
	for i, item := range items {
		names[i] = stringMember(item, "name")
	}
	labels := serverFields(names)
	servers := make([]Server, len(items))
	for i, item := range items {
		decodeStrict(item, &servers[i], labels[i], e)
	}
	return servers
}

// serverFields are the field paths of servers in messages: servers[<name>]
// for a server with a valid name of its own, else servers[<position>].
func serverFields(names []string) []string {
	count := map[string]int{}
	for _, n := range names {
		count[n]++
	}
	out := make([]string, len(names))
	for i, n := range names {
		if dnsLabel.MatchString(n) && count[n] == 1 {
			out[i] = fmt.Sprintf("%s[%s]", KeyServers, n)
		} else {
			out[i] = fmt.Sprintf("%s[%d]", KeyServers, i)
		}
	}
	return out
}

func (c *Cluster) applyDefaults() {
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if c.ExportSizeLimit == "" {
		c.ExportSizeLimit = DefaultExportSizeLimit
	}
	if c.RunAsUser == 0 {
		c.RunAsUser = DefaultRunAsUser
	}
	if c.ImageLoader == "" {
		c.ImageLoader = DefaultImageLoader
	}
	if c.NodeArch == "" {
		c.NodeArch = DefaultNodeArch
	}
}
