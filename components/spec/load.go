package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Getter returns the raw config value of a key (without namespace) as Pulumi
// hands it to programs: strings as-is, objects and arrays as JSON.
type Getter func(key string) (value string, ok bool)

// FieldError is a config problem, tied to the field that causes it.
type FieldError struct {
	Field string // e.g. "servers[2].fsid", "cluster.servers.nas-input-1.nodePort"
	Msg   string
}

func (e *FieldError) Error() string { return Namespace + ":" + e.Field + ": " + e.Msg }

// errs collects field errors so one preview reports every problem at once.
type errs []error

func (e *errs) add(field, format string, args ...any) {
	*e = append(*e, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (e errs) err() error {
	if len(e) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration (%d problem(s)):\n%w", len(e), errors.Join(e...))
}

// Load parses and validates the config of one stack. Nothing is registered
// before this returns without error.
func Load(get Getter) (*Config, error) {
	var e errs
	c := &Config{}

	c.NasNamespace = str(get, KeyNasNamespace)
	c.StorageClassName = str(get, KeyStorageClassName)
	c.ReclaimPolicy = str(get, KeyReclaimPolicy)
	decodeJSON(get, KeyMountOptions, &c.MountOptions, &e)
	decodeJSON(get, KeyLabels, &c.Labels, &e)
	c.Servers = decodeServers(get, &e)

	c.Target = Target(str(get, KeyTarget))
	c.KubeContext = str(get, KeyKubeContext)
	if raw, ok := get(KeyManageNamespaces); ok {
		b, err := strconv.ParseBool(raw)
		if err != nil {
			e.add(KeyManageNamespaces, "must be true or false, got %q", raw)
		}
		c.ManageNamespaces = b
	}
	switch c.Target {
	case TargetCluster:
		c.Cluster = &Cluster{}
		if !decodeJSON(get, KeyCluster, c.Cluster, &e) {
			e.add(KeyCluster, "is required when target is %q", TargetCluster)
		}
		c.Cluster.applyDefaults()
	case TargetExternal:
		c.External = &External{}
		if !decodeJSON(get, KeyExternal, c.External, &e) {
			e.add(KeyExternal, "is required when target is %q", TargetExternal)
		}
	}

	if len(e) == 0 {
		validate(c, &e)
	}
	return c, e.err()
}

func str(get Getter, key string) string {
	v, _ := get(key)
	return v
}

// decodeJSON decodes key into out, refusing unknown fields so that a typo
// (fsId for fsid) is an error rather than a silently missing value. It reports
// whether the key was set.
func decodeJSON(get Getter, key string, out any, e *errs) bool {
	raw, ok := get(key)
	if !ok || raw == "" {
		return false
	}
	if err := strictUnmarshal([]byte(raw), out); err != nil {
		e.add(key, "%v", err)
	}
	return true
}

func strictUnmarshal(raw []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return errors.New(cleanJSONError(err))
	}
	return nil
}

// decodeServers decodes server by server, so an error names servers[i].
func decodeServers(get Getter, e *errs) []Server {
	var raws []json.RawMessage
	if !decodeJSON(get, KeyServers, &raws, e) {
		return nil
	}
	servers := make([]Server, len(raws))
	for i, raw := range raws {
		if err := strictUnmarshal(raw, &servers[i]); err != nil {
			e.add(fmt.Sprintf("%s[%d]", KeyServers, i), "%v", err)
		}
	}
	return servers
}

// cleanJSONError drops the Go type names encoding/json puts in its messages;
// the field name stays.
func cleanJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("field %s: a %s is not allowed here (want %s)", te.Field, te.Value, te.Type.Kind())
		}
		return fmt.Sprintf("a %s is not allowed here (want %s)", te.Value, te.Type.Kind())
	}
	return err.Error()
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
}
