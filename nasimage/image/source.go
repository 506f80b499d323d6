package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// sourceFingerprint identifies what `go build` would compile.
type sourceFingerprint struct {
	// source hashes the nasd sources: every compiled file of the main-module
	// packages nasd imports (by import path and name, not by absolute path, so
	// any clone gives the same hash), the versions of the other modules, and
	// go.mod and go.sum.
	source    string
	goVersion string
}

// listedPackage is the part of `go list -json` we read.
type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	GoFiles    []string
	CgoFiles   []string
	SFiles     []string
	EmbedFiles []string
	Module     *struct {
		Path    string
		Version string
		Main    bool
		Replace *struct {
			Path    string
			Version string
		}
	}
}

func fingerprint(ctx context.Context, goCmd, moduleDir, goArch string) (sourceFingerprint, error) {
	var fp sourceFingerprint
	goVersion, err := goOutput(ctx, goCmd, moduleDir, goArch, "env", "GOVERSION")
	if err != nil {
		return fp, err
	}
	fp.goVersion = strings.TrimSpace(string(goVersion))

	listed, err := goOutput(ctx, goCmd, moduleDir, goArch, "list", "-deps",
		"-json=ImportPath,Dir,Standard,GoFiles,CgoFiles,SFiles,EmbedFiles,Module", NasdPackage)
	if err != nil {
		return fp, err
	}
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum"} {
		if err := hashFile(h, "module/"+name, filepath.Join(moduleDir, name)); err != nil {
			return fp, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(listed))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fp, fmt.Errorf("go list: %w", err)
		}
		switch {
		case p.Standard:
			// Part of the toolchain: covered by goVersion.
		case p.Module == nil:
			return fp, fmt.Errorf("go list: package %s has no module", p.ImportPath)
		case p.Module.Main || (p.Module.Replace != nil && p.Module.Replace.Version == ""):
			// Our code, or a module replaced by a local directory: hash the files.
			fmt.Fprintf(h, "package %s\n", p.ImportPath)
			for _, group := range [][]string{p.GoFiles, p.CgoFiles, p.SFiles, p.EmbedFiles} {
				for _, f := range group {
					if err := hashFile(h, p.ImportPath+"/"+f, filepath.Join(p.Dir, f)); err != nil {
						return fp, err
					}
				}
			}
		default:
			// A versioned module: go.sum pins its content; record the version.
			fmt.Fprintf(h, "package %s %s@%s\n", p.ImportPath, p.Module.Path, p.Module.Version)
			if r := p.Module.Replace; r != nil {
				fmt.Fprintf(h, "  => %s@%s\n", r.Path, r.Version)
			}
		}
	}
	fp.source = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return fp, nil
}

// hashFile writes name, length and content of a file into h: framed, so no
// two different file sets hash alike.
func hashFile(h io.Writer, name, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("hashing nasd sources: %w", err)
	}
	fmt.Fprintf(h, "file %q %d\n", name, len(data))
	_, err = h.Write(data)
	return err
}

func goOutput(ctx context.Context, goCmd, dir, goArch string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	cmd.Env = buildEnv(goArch)
	killGroupOnCancel(cmd)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("go %s: %w", strings.Join(args, " "), context.Cause(ctx))
		}
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
