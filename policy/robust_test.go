package main

import (
	"fmt"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/property"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/policyx"
	"github.com/stretchr/testify/require"
)

// oddValues replace a value of any shape: every rule must take each of them
// anywhere in a resource without panicking (values at preview may be unknown,
// and the engine may hand over anything a provider accepts).
var oddValues = []property.Value{
	unknown, {}, val("x"), val(""), val(7), val(-1), val(true),
	property.New([]property.Value{}), property.New(map[string]property.Value{}),
	property.New([]property.Value{unknown}), property.New([]property.Value{val(3)}),
}

// paths lists the path of every value inside v (maps and arrays included).
func paths(v property.Value, prefix []property.PathSegment) [][]property.PathSegment {
	var out [][]property.PathSegment
	switch {
	case v.IsMap():
		for k, e := range v.AsMap().All {
			p := append(append([]property.PathSegment{}, prefix...), property.NewSegment(k))
			out = append(append(out, p), paths(e, p)...)
		}
	case v.IsArray():
		for i, e := range v.AsArray().All {
			p := append(append([]property.PathSegment{}, prefix...), property.NewSegment(i))
			out = append(append(out, p), paths(e, p)...)
		}
	}
	return out
}

func TestRulesTakeAnyValueShape(t *testing.T) {
	for _, stack := range []string{"dev", "ocp"} {
		run := runProgram(t, stack)
		p := testPack(t, run)
		for _, typ := range []string{typePV, typePVC, typeDeployment, typeService} {
			var res policyx.AnalyzerResource
			found := false
			for _, r := range run.resources {
				if r.Type == typ && r.Name == "nas-backup-1" {
					res, found = r, true
				}
			}
			if !found {
				continue // ocp has no Deployment or Service
			}
			all := paths(property.New(res.Properties), nil)
			require.NotEmpty(t, all)
			for _, path := range all {
				for i, odd := range oddValues {
					edited, err := property.PathFromSegments(path...).Set(property.New(res.Properties), odd)
					require.NoError(t, err)
					r := res
					r.Properties = edited.AsMap()
					where := fmt.Sprintf("%s %s %v = odd value %d", stack, typ, path, i)
					for _, rule := range resourceRules {
						_, err := p.run(rule, r, nil)
						require.NoError(t, err, where)
					}
					rs := append([]policyx.AnalyzerResource{r}, run.resources...)
					for _, rule := range stackRules {
						_, err := runSafely(rule.name, "the stack", func(c *checker) { rule.check(rs, c) })
						require.NoError(t, err, where)
					}
				}
			}
		}
	}
}

func TestRunSafelyReportsAPanic(t *testing.T) {
	c, err := runSafely("nas-x", "urn:x", func(*checker) { panic("boom") })
	require.Nil(t, c)
	require.EqualError(t, err, "nas-topology policy pack: rule nas-x failed on urn:x: boom")
}
