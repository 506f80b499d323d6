package sync

import (
	"os"
	"path/filepath"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

// sideClock is what the engine knows of one side's file timestamps: how
// coarse they are and how far the side's clock (the Windows host's, behind
// a 9p or SMB share) is from ours.
type sideClock struct {
	// granularity: a file changed twice within one tick shows one mtime.
	// Measured (probe) or configured; at least minGranularity.
	granularity time.Duration
	// offset is the side's clock minus ours, as a file written now shows.
	offset time.Duration
}

// minGranularity is the floor of a measured granularity: Linux stamps files
// from the coarse clock (one jiffy, up to 10 ms), which reads as
// nanoseconds but moves in ticks.
const minGranularity = 10 * time.Millisecond

// clockMargin covers what a probe cannot measure exactly (the offset of a
// coarse clock, drift since the probe).
const clockMargin = time.Second

// now is the side's clock at our time t.
func (c sideClock) now(t time.Time) int64 { return t.Add(c.offset).UnixNano() }

// probeClock writes a temp file in dir a few times and reads its mtimes: the
// largest of 1 us, 1 ms, 10 ms, 100 ms, 1 s, 2 s dividing every mtime is the
// granularity (a FAT share's 2 s shows as every mtime even), and the mtime
// minus our clock after the write the offset. A failed probe gives the
// defaults: 2 s (the coarsest common share), no offset.
func probeClock(dir string) sideClock {
	c := sideClock{granularity: 2 * time.Second}
	tmp := filepath.Join(dir, scan.TempPrefix+"clock-"+newID()[:8]+scan.TempSuffix)
	defer os.Remove(tmp)
	var mtimes []int64
	var offset time.Duration
	for i := range 4 {
		if i > 0 {
			time.Sleep(3 * time.Millisecond)
		}
		if err := os.WriteFile(tmp, []byte{byte(i)}, 0o600); err != nil {
			return c
		}
		after := time.Now()
		fi, err := os.Stat(tmp)
		if err != nil {
			return c
		}
		mtimes = append(mtimes, fi.ModTime().UnixNano())
		offset = fi.ModTime().Sub(after)
	}
	c.offset = offset
	c.granularity = minGranularity
	for _, g := range []time.Duration{2 * time.Second, time.Second, 100 * time.Millisecond} {
		all := true
		for _, m := range mtimes {
			all = all && m%int64(g) == 0
		}
		if all {
			c.granularity = g
			break
		}
	}
	return c
}
