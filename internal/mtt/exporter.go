package mtt

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"
)

// Exporter writes the regulator's files from hazmon's data and pushes
// them: point definitions on start and whenever SetPoints changes them,
// real-time values every Interval, abnormal records as they are handed
// over, statistics per Stats call (networking notes: cadence S). The input
// methods only record data under a short lock and never wait for a file
// to be written or pushed, so they are safe on any path and from any
// goroutine; writing and pushing run on Run's goroutines.
type Exporter struct {
	o     Options
	enc   Encoder
	spool *Spool
	wake  chan struct{}

	mu         sync.Mutex
	points     []Point          // sorted by code
	havePoints bool             // SetPoints was called
	byCode     map[string]int   // code → index in points
	defsDirty  bool             // points changed since the last CDDY
	defsOnce   bool             // a CDDY was written in this run
	latest     map[string]Value // last Observe per point
	abnormals  []Abnormal
	statsQ     [][]Stat
	lastName   map[FileType]time.Time
	st         Status
	runStarted bool
	cancel     func()
	done       chan struct{}
}

// Status is the exporter's state for status output and metrics.
type Status struct {
	Spool   SpoolStats
	Written map[FileType]uint64 // files written into the spool, per kind
	// WriteErrors counts files that could not be written into the spool
	// (disk full, permissions); abnormal records and statistics are kept
	// for the next try, a real-time file is lost.
	WriteErrors  uint64
	Pushed       uint64    // files whose upload was confirmed
	PushFailures uint64    // failed upload attempts
	LastPush     time.Time // time of the last confirmed upload
	LastError    string    // the last upload error, "" once an upload succeeds again
	// InputDropped counts abnormal records and statistics batches dropped
	// because their queue was full (QueueMax) while files could not be
	// written.
	InputDropped uint64
}

// New opens the spool (files found there are pushed by Run) and returns
// an exporter that is not running yet. Errors name the spool directory or
// the missing option.
func New(o Options) (*Exporter, error) {
	o.defaults()
	if o.SpoolDir == "" {
		return nil, errors.New("mtt: Options.SpoolDir is required")
	}
	if o.Uploader == nil {
		return nil, errors.New("mtt: Options.Uploader is required")
	}
	if !isDigits(o.Mine.Code, 12) {
		return nil, fmt.Errorf("mtt: mine code %q is not 12 digits", o.Mine.Code)
	}
	sp, err := OpenSpool(o.SpoolDir, o.SpoolMaxBytes, o.SpoolMaxFiles)
	if err != nil {
		return nil, fmt.Errorf("mtt: %w", err)
	}
	e := &Exporter{
		o: o, enc: Encoder{Mine: o.Mine, Loc: o.Loc}, spool: sp, wake: make(chan struct{}, 1),
		byCode: map[string]int{}, latest: map[string]Value{}, lastName: map[FileType]time.Time{},
		st: Status{Written: map[FileType]uint64{}}, done: make(chan struct{}),
	}
	for _, t := range FileTypes {
		if s := sp.Latest(t); s != "" {
			if at, err := time.ParseInLocation(NameTimeLayout, s, o.Loc); err == nil {
				e.lastName[t] = at
			}
		}
	}
	return e, nil
}

// Codes returns the exporter's code tables (read-only), for mapping
// hazmon's statuses, fault codes, levels and sensor types.
func (e *Exporter) Codes() *Codes { return e.o.Codes }

func (e *Exporter) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// SetPoints sets the point definitions (every point the uplink reports).
// A set that differs from the current one (in anything but DataTime) is
// written as a CDDY file; the same set again writes nothing. Of points
// with the same code the last is kept. Values of points no longer defined
// are forgotten.
func (e *Exporter) SetPoints(ps []Point) {
	byCode := make(map[string]Point, len(ps))
	for _, p := range ps {
		p.Related = slices.Clone(p.Related)
		byCode[p.Code] = p
	}
	sorted := slices.SortedFunc(maps.Values(byCode), func(a, b Point) int { return cmp.Compare(a.Code, b.Code) })
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.havePoints && samePoints(e.points, sorted) {
		return
	}
	e.points, e.havePoints = sorted, true
	e.byCode = make(map[string]int, len(sorted))
	for i, p := range sorted {
		e.byCode[p.Code] = i
	}
	for code := range e.latest {
		if _, ok := e.byCode[code]; !ok {
			delete(e.latest, code)
		}
	}
	e.defsDirty = true
	e.signal()
}

// samePoints compares two sorted sets ignoring DataTime.
func samePoints(a, b []Point) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.DataTime, y.DataTime = time.Time{}, time.Time{}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// Observe records a point's latest value, written in the next real-time
// file. A value of a point not in the definitions (once SetPoints was
// called) is ignored.
func (e *Exporter) Observe(v Value) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.byCode[v.Point]; !ok && e.havePoints {
		return
	}
	e.latest[v.Point] = v
}

// Abnormal queues an abnormal record (an episode that ended) to be
// written promptly as a YCBJ file. When QueueMax records are already
// waiting the oldest is dropped (counted in Status.InputDropped).
func (e *Exporter) Abnormal(a Abnormal) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.abnormals) >= e.o.QueueMax {
		e.abnormals = slices.Delete(e.abnormals, 0, 1)
		e.st.InputDropped++
	}
	e.abnormals = append(e.abnormals, a)
	e.signal()
}

// Stats queues one window's statistics (one record per point) to be
// written promptly as a TJSJ file. An empty batch is ignored. When
// QueueMax batches are already waiting the oldest is dropped (counted).
func (e *Exporter) Stats(ss []Stat) {
	if len(ss) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.statsQ) >= e.o.QueueMax {
		e.statsQ = slices.Delete(e.statsQ, 0, 1)
		e.st.InputDropped++
	}
	e.statsQ = append(e.statsQ, slices.Clone(ss))
	e.signal()
}

// Status returns the exporter's state.
func (e *Exporter) Status() Status {
	e.mu.Lock()
	st := e.st
	st.Written = maps.Clone(e.st.Written)
	e.mu.Unlock()
	st.Spool = e.spool.Stats()
	return st
}

// fill copies a point's type name, place and unit into empty fields.
func (e *Exporter) fill(code string, typeName, place, unit *string) {
	i, ok := e.byCode[code]
	if !ok {
		return
	}
	p := e.points[i]
	for _, f := range []struct {
		dst *string
		src string
	}{{typeName, p.TypeName}, {place, p.Place}, {unit, p.Unit}} {
		if *f.dst == "" {
			*f.dst = f.src
		}
	}
}
