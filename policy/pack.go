package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/blang/semver"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/policyx"

	"github.com/nas-topology/nas-topology/components/spec"
)

// Name and Version of the pack, as `pulumi preview` prints them.
const (
	Name    = "nas-topology"
	Version = "0.1.0"
)

// input is what a resource rule sees.
type input struct {
	typ          string
	name         string // the resource's URN name, for messages when it has no metadata.name
	props        property.Map
	exp          *expected   // the shared config (rules with needsSpec)
	stack        stackConfig // the stack's addresses, if the engine passed its config
	allowedHosts []string    // policy config allowedHosts, lower case
}

// resourceRule checks one resource at a time.
type resourceRule struct {
	name        string
	description string
	needsSpec   bool // reads Pulumi.yaml (policy config projectDir applies)
	hosts       bool // takes the policy config allowedHosts
	check       func(in input, c *checker)
}

// stackRule checks the stack as a whole.
type stackRule struct {
	name        string
	description string
	check       func(rs []policyx.AnalyzerResource, c *checker)
}

var resourceRules = []resourceRule{
	{
		name:        "nas-pv-matches-shared-spec",
		description: "An NFS PersistentVolume is one of the volumes of Pulumi.yaml's shared config, with exactly the fields components.VolumeFor renders (reclaim policy Retain, storage class, capacity, access modes, mount options, export path, readOnly, claimRef, labels).",
		needsSpec:   true,
		check:       checkPV,
	},
	{
		name:        "nas-pv-nfs-server",
		description: "An NFS PersistentVolume's nfs.server is the address the stack config gives its server, or an IP address or configured external host; never a cluster DNS name (kubelet mounts from the node).",
		needsSpec:   true,
		hosts:       true,
		check:       checkNFSServer,
	},
	{
		name:        "nas-pvc-matches-shared-spec",
		description: "A PersistentVolumeClaim names its volume (volumeName); a NAS claim has the storage class, access modes and size of its volume in Pulumi.yaml, and no other claim binds a NAS volume.",
		needsSpec:   true,
		check:       checkPVC,
	},
	{
		name:        "nas-pod-security",
		description: "A nasd pod meets the restricted pod security standard (runAsNonRoot, no privilege escalation, capabilities drop ALL and add none, seccomp RuntimeDefault, not privileged, no host namespaces or ports; its hostPath volume is the one exception), with readOnlyRootFilesystem, cpu/memory requests and limits, and a sizeLimit on every emptyDir.",
		check:       checkPodSecurity,
	},
	{
		name:        "nas-nasd-matches-shared-spec",
		description: "nasd serves its server as Pulumi.yaml defines it (--fsid, --export-path, --role); a read-only server (the backup) exports \"ro\" and mounts its Windows directory read-only.",
		needsSpec:   true,
		check:       checkNasdExport,
	},
	{
		name:        "nas-nasd-handle-key",
		description: "nasd reads its file-handle key (--handle-key-file) from a Secret volume mounted read-only, with no write or world bits: a key in the pod's emptyDir dies with the pod and makes every client's handles stale.",
		check:       checkHandleKey,
	},
}

var stackRules = []stackRule{
	{
		name:        "nas-service-node-ports",
		description: fmt.Sprintf("Every fixed Service nodePort is inside %d-%d and unique in the stack.", spec.NodePortMin, spec.NodePortMax),
		check:       checkNodePorts,
	},
	{
		name:        "nas-service-cluster-ips-unique",
		description: "No two Services of the stack ask for the same clusterIP.",
		check:       checkClusterIPs,
	},
	{
		name:        "nas-fsids-unique",
		description: "No two containers of the stack export with the same --fsid.",
		check:       checkFSIDs,
	},
	{
		name:        "nas-pvc-class-matches-pv",
		description: "Every PersistentVolumeClaim binds (volumeName) a PersistentVolume of this stack with the same storage class.",
		check:       checkClaimClasses,
	},
}

// Names of the advisory policies that say which checks were skipped because
// a value was not known yet (at preview, e.g. a clusterIP the Service gets on create).
const (
	unknownResourcePolicy = "nas-unknown-at-preview"
	unknownStackPolicy    = "nas-stack-unknown-at-preview"
)

// pack holds what the policies share: where the pack runs and the shared
// config, read once per project directory.
type pack struct {
	packDir string      // the policy pack directory the engine started us in ("" if unknown)
	stack   stackConfig // from the stack config the engine passed

	mu     sync.Mutex
	loaded map[string]loadResult // by project directory
}

type loadResult struct {
	exp *expected
	err error
}

func newPack(packDir string, stack stackConfig) *pack {
	return &pack{packDir: packDir, stack: stack, loaded: map[string]loadResult{}}
}

// expected returns the shared config for the policy config, reading
// Pulumi.yaml the first time. A failure is an error, which fails the preview
// with the message: a pack that cannot see the shared config must not pass.
func (p *pack) expected(config map[string]any) (*expected, error) {
	dir, how := projectDir(config, p.packDir)
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.loaded[dir]
	if !ok {
		r.exp, r.err = loadExpected(dir)
		if r.err != nil {
			r.err = fmt.Errorf("%s policy pack: project directory %s (from %s): %w; set the policy config projectDir or $%s to the directory holding the project's Pulumi.yaml",
				Name, dir, how, r.err, EnvProjectDir)
		}
		p.loaded[dir] = r
	}
	return r.exp, r.err
}

// run runs one resource rule on a resource.
func (p *pack) run(rule resourceRule, res policyx.AnalyzerResource, config map[string]any) (*checker, error) {
	in := input{typ: res.Type, name: res.Name, props: res.Properties, stack: p.stack}
	if rule.needsSpec {
		if !relevant(res.Type) {
			return &checker{}, nil
		}
		exp, err := p.expected(config)
		if err != nil {
			return nil, err
		}
		in.exp = exp
	}
	if rule.hosts {
		in.allowedHosts = allowedHosts(config, p.stack)
	}
	return runSafely(rule.name, res.URN, func(c *checker) { rule.check(in, c) })
}

// runSafely runs a check and turns a panic (a bug: the rules are written not
// to panic on any value shape) into an error naming the rule and resource, so
// the engine reports it instead of losing the pack.
func runSafely(rule, urn string, check func(c *checker)) (c *checker, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("%s policy pack: rule %s failed on %s: %v", Name, rule, urn, r)
		}
	}()
	c = &checker{}
	check(c)
	return c, nil
}

// relevant says whether a resource type can concern a rule that reads the
// shared config (so that other resources never need Pulumi.yaml).
func relevant(typ string) bool {
	_, workload := podTemplates[typ]
	return workload || typ == typePV || typ == typePVC
}

// allowedHosts are the external NAS hosts a PV may name: the policy config
// allowedHosts plus every address of the stack config.
func allowedHosts(config map[string]any, stack stackConfig) []string {
	var out []string
	if list, ok := config["allowedHosts"].([]any); ok {
		for _, h := range list {
			if s, ok := h.(string); ok {
				out = append(out, strings.TrimSuffix(strings.ToLower(s), "."))
			}
		}
	}
	for _, a := range stack.addresses {
		out = append(out, strings.TrimSuffix(strings.ToLower(a.addr), "."))
	}
	return out
}

// configSchema is the policy config of the rules that read Pulumi.yaml.
func configSchema(rule resourceRule) *policyx.ConfigSchema {
	props := map[string]map[string]any{}
	if rule.needsSpec {
		props["projectDir"] = map[string]any{
			"type":        "string",
			"description": "Directory holding the project's Pulumi.yaml (default: $" + EnvProjectDir + ", else the parent of the policy pack directory).",
		}
	}
	if rule.hosts {
		props["allowedHosts"] = map[string]any{
			"type":        "array",
			"items":       map[string]any{"type": "string"},
			"description": "External NAS host names a PersistentVolume's nfs.server may name, besides IP addresses and the stack config's addresses.",
		}
	}
	if len(props) == 0 {
		return nil
	}
	return &policyx.ConfigSchema{Properties: props}
}

// policies builds the pack: one mandatory policy per rule, and two advisory
// ones reporting what the rules could not check yet.
func (p *pack) policies() []policyx.Policy {
	var out []policyx.Policy
	for _, rule := range resourceRules {
		out = append(out, policyx.NewResourceValidationPolicy(rule.name, policyx.ResourceValidationPolicyArgs{
			Description:      rule.description,
			EnforcementLevel: policyx.EnforcementLevelMandatory,
			ConfigSchema:     configSchema(rule),
			ValidateResource: func(_ context.Context, args policyx.ResourceValidationArgs) error {
				c, err := p.run(rule, args.Resource, args.Config)
				if err != nil {
					return err
				}
				for _, v := range c.violations {
					args.Manager.ReportViolation(v.msg, v.urn)
				}
				return nil
			},
		}))
	}
	for _, rule := range stackRules {
		out = append(out, policyx.NewStackValidationPolicy(rule.name, policyx.StackValidationPolicyArgs{
			Description:      rule.description,
			EnforcementLevel: policyx.EnforcementLevelMandatory,
			ValidateStack: func(_ context.Context, args policyx.StackValidationArgs) error {
				c, err := runSafely(rule.name, "the stack", func(c *checker) { rule.check(args.Resources, c) })
				if err != nil {
					return err
				}
				for _, v := range c.violations {
					args.Manager.ReportViolation(v.msg, v.urn)
				}
				return nil
			},
		}))
	}
	out = append(out,
		policyx.NewResourceValidationPolicy(unknownResourcePolicy, policyx.ResourceValidationPolicyArgs{
			Description:      "Checks skipped because a value is not known yet (at preview); they run when it is known, at `pulumi up`.",
			EnforcementLevel: policyx.EnforcementLevelAdvisory,
			ConfigSchema:     configSchema(resourceRule{needsSpec: true, hosts: true}),
			ValidateResource: func(_ context.Context, args policyx.ResourceValidationArgs) error {
				var lines []string
				for _, rule := range resourceRules {
					c, err := p.run(rule, args.Resource, args.Config)
					if err != nil {
						return nil // the rule's own policy reports it
					}
					lines = append(lines, unknownLines(rule.name, c)...)
				}
				if len(lines) > 0 {
					args.Manager.ReportViolation(strings.Join(lines, "\n"), "")
				}
				return nil
			},
		}),
		policyx.NewStackValidationPolicy(unknownStackPolicy, policyx.StackValidationPolicyArgs{
			Description:      "Stack checks skipped because a value is not known yet (at preview); they run when it is known, at `pulumi up`.",
			EnforcementLevel: policyx.EnforcementLevelAdvisory,
			ValidateStack: func(_ context.Context, args policyx.StackValidationArgs) error {
				var lines []string
				for _, rule := range stackRules {
					c, err := runSafely(rule.name, "the stack", func(c *checker) { rule.check(args.Resources, c) })
					if err != nil {
						return nil // the rule's own policy reports it
					}
					lines = append(lines, unknownLines(rule.name, c)...)
				}
				if len(lines) > 0 {
					args.Manager.ReportViolation(strings.Join(lines, "\n"), "")
				}
				return nil
			},
		}),
	)
	return out
}

// unknownLines are the skipped checks of one rule run, deduplicated.
func unknownLines(rule string, c *checker) []string {
	seen := map[string]bool{}
	for _, u := range c.unknowns {
		seen[fmt.Sprintf("%s: not checked, unknown: %s", rule, u.msg)] = true
	}
	return sortedKeys(seen)
}

// PolicyPack is the pack the engine runs.
func (p *pack) PolicyPack() (policyx.PolicyPack, error) {
	return policyx.NewPolicyPack(Name, semver.MustParse(Version), policyx.EnforcementLevelMandatory, p.policies())
}
