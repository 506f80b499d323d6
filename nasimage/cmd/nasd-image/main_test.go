package main

import (
	"context"
	"strings"
	"testing"
)

// The flag checks run before any build, so these are fast.
func TestRunRejectsBeforeBuilding(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown loader", []string{"-load", "docker"}, `unknown image loader "docker"`},
		{"missing tool", []string{"-load", "minikube"}, "needs minikube on PATH"},
		{"registry without address", []string{"-load", "registry"}, "needs a registry"},
		{"stray argument", []string{"build"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			if code := run(context.Background(), tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tt.want)
			}
		})
	}
}
