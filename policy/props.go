package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

// node is a value inside a resource's properties together with its path, so
// that every message names the field it is about.
type node struct {
	v    property.Value
	path string
}

func root(m property.Map) node { return node{v: property.New(m)} }

// get walks down map keys. Below an unknown (computed) value the result stays
// unknown; below anything else that is not a map it is null.
func (n node) get(keys ...string) node {
	for _, k := range keys {
		p := k
		if n.path != "" {
			p = n.path + "." + k
		}
		switch {
		case n.v.IsComputed():
			n = node{v: n.v, path: p}
		case n.v.IsMap():
			n = node{v: n.v.AsMap().Get(k), path: p}
		default:
			n = node{path: p}
		}
	}
	return n
}

// items returns the elements of an array (nil for anything else).
func (n node) items() []node {
	if !n.v.IsArray() {
		return nil
	}
	var out []node
	for i, v := range n.v.AsArray().All {
		out = append(out, node{v: v, path: fmt.Sprintf("%s[%d]", n.path, i)})
	}
	return out
}

// unknown reports whether the value, or anything inside it, is not known yet.
func (n node) unknown() bool { return n.v.HasComputed() }

func (n node) isNull() bool { return n.v.IsNull() }

// str is the string value, "" for anything else.
func (n node) str() string {
	if n.v.IsString() {
		return n.v.AsString()
	}
	return ""
}

// isTrue and isFalse distinguish an explicit boolean from an absent one.
func (n node) isTrue() bool  { return n.v.IsBool() && n.v.AsBool() }
func (n node) isFalse() bool { return n.v.IsBool() && !n.v.AsBool() }

// strs is an array of strings; ok is false for anything else but null.
func (n node) strs() (out []string, ok bool) {
	if n.isNull() {
		return nil, true
	}
	if !n.v.IsArray() {
		return nil, false
	}
	for _, v := range n.v.AsArray().All {
		if !v.IsString() {
			return nil, false
		}
		out = append(out, v.AsString())
	}
	return out, true
}

// strMap is a map of strings (labels); non-string values are left out.
func (n node) strMap() map[string]string {
	out := map[string]string{}
	if n.v.IsMap() {
		for k, v := range n.v.AsMap().All {
			if v.IsString() {
				out[k] = v.AsString()
			}
		}
	}
	return out
}

// show renders a value for a message.
func (n node) show() string {
	v := n.v
	switch {
	case v.IsNull():
		return "not set"
	case v.IsComputed():
		return "unknown"
	case v.IsString():
		return strconv.Quote(v.AsString())
	case v.IsBool():
		return strconv.FormatBool(v.AsBool())
	case v.IsNumber():
		return strconv.FormatFloat(v.AsNumber(), 'f', -1, 64)
	case v.IsArray():
		parts := make([]string, 0, v.AsArray().Len())
		for _, e := range n.items() {
			parts = append(parts, e.show())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case v.IsMap():
		return "an object"
	}
	return fmt.Sprintf("%v", v)
}

// finding is one message of a rule, about a resource (urn "" = the resource
// being validated).
type finding struct {
	urn string
	msg string
}

// checker collects what a rule run finds: violations (the rule fails) and
// unknowns (a value the rule needs is not known yet, as at preview: the rule
// skips that check and the advisory policy nas-unknown-at-preview says so).
type checker struct {
	subject    string // e.g. `PersistentVolume "nas-input-1"`, prefixed to messages
	urn        string
	violations []finding
	unknowns   []finding
}

func (c *checker) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if c.subject != "" {
		msg = c.subject + ": " + msg
	}
	c.violations = append(c.violations, finding{urn: c.urn, msg: msg})
}

// known records n as unknown when it is, and reports whether it can be checked.
func (c *checker) known(n node) bool {
	if n.unknown() {
		msg := n.path
		if c.subject != "" {
			msg = c.subject + ": " + n.path
		}
		c.unknowns = append(c.unknowns, finding{urn: c.urn, msg: msg})
		return false
	}
	return true
}

// wantStr checks a string field against the value the shared spec gives it.
func (c *checker) wantStr(n node, want, source string) {
	if c.known(n) && n.str() != want {
		c.failf("%s is %s, %s says %q", n.path, n.show(), source, want)
	}
}

// wantStrs checks a string list; ordered says whether order matters.
func (c *checker) wantStrs(n node, want []string, ordered bool, source string) {
	if !c.known(n) {
		return
	}
	got, ok := n.strs()
	if ok && sameStrings(got, want, ordered) {
		return
	}
	c.failf("%s is %s, %s says %s", n.path, n.show(), source, showStrings(want))
}

func sameStrings(a, b []string, ordered bool) bool {
	if len(a) != len(b) {
		return false
	}
	if ordered {
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
		if count[s] < 0 {
			return false
		}
	}
	return true
}

func showStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
