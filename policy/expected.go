package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/nas-topology/nas-topology/components"
	"github.com/nas-topology/nas-topology/components/spec"
)

// EnvProjectDir names the project directory (where Pulumi.yaml is) when the
// policy config does not; see projectDir.
const EnvProjectDir = "NAS_PROJECT_DIR"

// server is one NAS of the shared config with the volume the program renders
// for it: components.VolumeFor, the same function on the same file.
type server struct {
	spec.Server
	Volume components.Volume
}

// expected is what the shared config of Pulumi.yaml says the stack must hold.
type expected struct {
	file     string // the Pulumi.yaml it was read from, for messages
	byServer map[string]*server
	byVolume map[string]*server     // PV name
	byClaim  map[spec.Claim]*server // PVC namespace/name
	shared   spec.Shared            // as parsed
	servers  []*server              // in Pulumi.yaml order
}

// loadExpected reads and validates the shared config of dir/Pulumi.yaml
// exactly as the program does (spec.ProjectConfig, spec.Load) and renders each
// server's volume with components.VolumeFor.
func loadExpected(dir string) (*expected, error) {
	file := filepath.Join(dir, "Pulumi.yaml")
	project, err := spec.ProjectConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read the shared config of the project: %w", err)
	}
	// Only the shared keys: the per-stack part (target, addresses) is not in
	// Pulumi.yaml, and Load's complaint about the missing target is dropped.
	get := func(key string) (string, bool) {
		if !slices.Contains(spec.SharedKeys, key) {
			return "", false
		}
		v, ok := project[key]
		return v, ok
	}
	cfg, err := spec.Load(get)
	if problems := sharedProblems(err); len(problems) > 0 {
		return nil, fmt.Errorf("the shared config in %s is invalid (%d problem(s)):\n%w", file, len(problems), errors.Join(problems...))
	}
	e := &expected{
		file:     file,
		byServer: map[string]*server{},
		byVolume: map[string]*server{},
		byClaim:  map[spec.Claim]*server{},
		shared:   cfg.Shared,
	}
	for _, s := range cfg.Servers {
		srv := &server{Server: s, Volume: components.VolumeFor(cfg.Shared, s)}
		e.servers = append(e.servers, srv)
		e.byServer[s.Name] = srv
		e.byVolume[srv.Volume.Name] = srv
		e.byClaim[srv.Volume.Claim] = srv
	}
	return e, nil
}

// sharedProblems flattens the errors of spec.Load, keeping all but the one
// about the per-stack key target.
func sharedProblems(err error) []error {
	var out []error
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*spec.FieldError); ok {
			if fe.Field != spec.KeyTarget {
				out = append(out, fe)
			}
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		default:
			out = append(out, err)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// projectDir says where Pulumi.yaml is, and how that was decided: the policy
// config `projectDir`, else $NAS_PROJECT_DIR, else the parent of the policy
// pack's directory (the project root for `pulumi preview --policy-pack policy`),
// else the working directory. Relative paths are taken from the pack's working
// directory, which the engine sets to the project directory.
func projectDir(config map[string]any, packDir string) (dir, how string) {
	if s, ok := config["projectDir"].(string); ok && s != "" {
		return s, "policy config projectDir"
	}
	if s := os.Getenv(EnvProjectDir); s != "" {
		return s, "$" + EnvProjectDir
	}
	if packDir != "" {
		if abs, err := filepath.Abs(packDir); err == nil {
			packDir = abs
		}
		return filepath.Dir(packDir), "the parent of the policy pack directory " + packDir
	}
	wd, _ := os.Getwd()
	return wd, "the working directory"
}

// address is where the stack config says a server's PV must point.
type address struct {
	addr string
	key  string // the config key it comes from, for messages
}

// stackConfig is the part of the stack's own config the pack uses: the NFS
// address of each server. The engine hands the pack the stack's config when
// it starts it (ConfigureStack), so these are the values the program reads.
type stackConfig struct {
	visible   bool               // the engine passed a nas-topology:target
	addresses map[string]address // server name -> address
}

// readStackConfig extracts the addresses from the stack config (getConfig is
// ctx.GetConfig of the pack's context). Malformed values are ignored here:
// the program itself refuses them with a message naming the field.
func readStackConfig(getConfig func(key string) (string, bool)) stackConfig {
	sc := stackConfig{addresses: map[string]address{}}
	target, ok := getConfig(spec.Namespace + ":" + spec.KeyTarget)
	if !ok {
		return sc
	}
	sc.visible = true
	switch spec.Target(target) {
	case spec.TargetCluster:
		var c struct {
			Servers map[string]struct {
				ClusterIP string `json:"clusterIP"`
			} `json:"servers"`
		}
		raw, _ := getConfig(spec.Namespace + ":" + spec.KeyCluster)
		if json.Unmarshal([]byte(raw), &c) == nil {
			for name, s := range c.Servers {
				key := fmt.Sprintf("%s:%s.servers.%s.clusterIP", spec.Namespace, spec.KeyCluster, name)
				sc.addresses[name] = address{addr: s.ClusterIP, key: key}
			}
		}
	case spec.TargetExternal:
		var x spec.External
		raw, _ := getConfig(spec.Namespace + ":" + spec.KeyExternal)
		if json.Unmarshal([]byte(raw), &x) == nil {
			for name, a := range x.Addresses {
				key := fmt.Sprintf("%s:%s.addresses.%s", spec.Namespace, spec.KeyExternal, name)
				sc.addresses[name] = address{addr: a, key: key}
			}
		}
	}
	return sc
}
