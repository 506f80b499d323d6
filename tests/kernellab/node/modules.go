package node

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nas-topology/nas-topology/tests/kernellab"
)

// modulesDep is user-mode-linux's modules.dep: module name -> its file and
// dependencies. The guest loads modules itself because modprobe looks in
// /lib/modules, which is the host's and has nothing for this kernel.
type modulesDep struct {
	dir  string
	path map[string]string   // name -> file relative to dir
	deps map[string][]string // name -> dependency names, in modules.dep order
}

func readModulesDep() (*modulesDep, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, err
	}
	dir := filepath.Join(kernellab.ModulesDir, unix.ByteSliceToString(uts.Release[:]))
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &modulesDep{dir: dir, path: map[string]string{}, deps: map[string][]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := moduleName(file)
		d.path[name] = file
		for _, dep := range strings.Fields(rest) {
			d.deps[name] = append(d.deps[name], moduleName(dep))
		}
	}
	return d, sc.Err()
}

func moduleName(file string) string {
	base := filepath.Base(file)
	base = base[:strings.Index(base, ".ko")]
	return strings.ReplaceAll(base, "-", "_")
}

// load inserts a module after its dependencies (the last listed first, as
// modprobe does); a module already in the kernel is fine.
func (d *modulesDep) load(name string, loaded map[string]bool) error {
	name = strings.ReplaceAll(name, "-", "_")
	if loaded[name] {
		return nil
	}
	file, ok := d.path[name]
	if !ok {
		return fmt.Errorf("module %s not in %s/modules.dep", name, d.dir)
	}
	deps := d.deps[name]
	for i := len(deps) - 1; i >= 0; i-- {
		if err := d.load(deps[i], loaded); err != nil {
			return err
		}
	}
	f, err := os.Open(filepath.Join(d.dir, file))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("insert module %s: %w", name, err)
	}
	loaded[name] = true
	return nil
}
