package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// SocketMode is the control socket's permission: owner and group hazmon
// may connect, nobody else.
const SocketMode = 0o660

// SocketGroup is the group given the socket when it exists on the host
// (created by scripts/install.sh; technicians are added to it).
const SocketGroup = "hazmon"

// ShutdownTimeout bounds how long Serve waits for requests in progress
// (an export, an output test) once its context ends.
const ShutdownTimeout = 5 * time.Second

// Server serves a Backend on the control socket. Create it with Listen.
type Server struct {
	path string
	ln   net.Listener
	b    Backend
	log  *slog.Logger
	// Client limits: MaxConns and IdleTimeout (changed by tests only).
	maxConns int
	idle     time.Duration
}

// Listen creates the control socket at path: its folder (0750) if
// missing; a stale socket file (nobody listening) is removed first; the
// socket gets mode 0660 and group hazmon if that group exists. It fails if
// another process answers on path, or if path is something other than a
// socket.
func Listen(path string, b Backend, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control socket %s: create folder: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket; not removing it", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another agent is answering on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
		}
		log.Info("control: removed stale socket", "path", path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// net.Listen leaves the socket removal to Close; keep that.
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: chmod: %w", path, err)
	}
	if g, err := user.LookupGroup(SocketGroup); err == nil {
		if gid, err := strconv.Atoi(g.Gid); err == nil {
			if err := os.Chown(path, -1, gid); err != nil {
				log.Warn("control: cannot give the socket to group "+SocketGroup, "path", path, "err", err)
			}
		}
	}
	return &Server{path: path, ln: ln, b: b, log: log, maxConns: MaxConns, idle: IdleTimeout}, nil
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Serve answers requests until ctx ends, then waits up to ShutdownTimeout
// for requests in progress, closes the socket and removes its file. It
// returns nil after a shutdown by ctx. It keeps at most MaxConns
// connections open and closes one idle for IdleTimeout (see MaxConns).
func (s *Server) Serve(ctx context.Context) error {
	ll := newLimitListener(s.ln, s.maxConns)
	hs := &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: s.idle,
		IdleTimeout:       s.idle,
		ConnState:         ll.connState,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ll) }()
	select {
	case err := <-done:
		return fmt.Errorf("control socket %s: %w", s.path, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-done
	return nil
}

func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.b.Status(r.Context())
		s.reply(w, st, err)
	})
	m.HandleFunc("POST /v1/probe", func(w http.ResponseWriter, r *http.Request) {
		var req ProbeRequest
		if !s.decode(w, r, &req) {
			return
		}
		res, err := s.b.Probe(r.Context(), req)
		s.reply(w, res, err)
	})
	m.HandleFunc("POST /v1/output/test", func(w http.ResponseWriter, r *http.Request) {
		var req OutputTestRequest
		if !s.decode(w, r, &req) {
			return
		}
		s.log.Info("control: output test requested", "output", req.Name, "for_s", req.ForS)
		res, err := s.b.OutputTest(r.Context(), req.Name, duration(req.ForS))
		s.reply(w, res, err)
	})
	m.HandleFunc("POST /v1/output/restore", func(w http.ResponseWriter, r *http.Request) {
		var req OutputRestoreRequest
		if !s.decode(w, r, &req) {
			return
		}
		s.log.Warn("control: output restore requested", "output", req.Name)
		res, err := s.b.OutputRestore(r.Context(), req.Name)
		s.reply(w, res, err)
	})
	m.HandleFunc("POST /v1/calibrate", func(w http.ResponseWriter, r *http.Request) {
		var req CalibrateRequest
		if !s.decode(w, r, &req) {
			return
		}
		s.log.Info("control: calibration requested", "sensor", req.Sensor, "for_s", req.ForS)
		res, err := s.b.Calibrate(r.Context(), req.Sensor, duration(req.ForS))
		s.reply(w, res, err)
	})
	m.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		s.log.Info("control: reload requested")
		res, err := s.b.Reload(r.Context())
		s.reply(w, res, err)
	})
	m.HandleFunc("GET /v1/buffer/stats", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.b.BufferStats(r.Context())
		s.reply(w, st, err)
	})
	m.HandleFunc("GET /v1/buffer/export", s.export)
	m.HandleFunc("GET /v1/metrics", s.metrics)
	m.HandleFunc("GET /metrics", s.metrics) // the path scrapers expect: curl --unix-socket SOCK http://hazmon/metrics
	m.HandleFunc("GET /v1/buffer/dead", s.dead)
	return m
}

// metrics answers the Prometheus text format, or a JSON error if the
// agent could not gather it.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := s.b.Metrics(r.Context(), &buf); err != nil {
		s.reply(w, nil, err)
		return
	}
	w.Header().Set("Content-Type", MetricsContentType)
	if _, err := w.Write(buf.Bytes()); err != nil {
		s.log.Warn("control: write metrics", "err", err)
	}
}

// export streams the records; an error after the first byte is sent in
// the X-Export-Error trailer, since the status line is already out.
func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.reply(w, nil, fmt.Errorf("%w: since %q is not RFC3339", ErrInvalid, v))
			return
		}
		since = t
	}
	format := q.Get("format")
	if err := CheckFormat(format); err != nil {
		s.reply(w, nil, err)
		return
	}
	s.stream(w, func(cw io.Writer) (int, error) { return s.b.BufferExport(r.Context(), since, format, cw) })
}

// dead streams the dead letters, errors after the first byte in the
// X-Export-Error trailer as for export.
func (s *Server) dead(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if err := CheckFormat(format); err != nil {
		s.reply(w, nil, err)
		return
	}
	s.stream(w, func(cw io.Writer) (int, error) { return s.b.BufferDead(r.Context(), format, cw) })
}

// stream sends what write writes as a text stream: an error before the
// first byte is an ordinary error reply; one after it goes in the
// X-Export-Error trailer, with the record count in X-Export-Records.
func (s *Server) stream(w http.ResponseWriter, write func(io.Writer) (int, error)) {
	w.Header().Set("Trailer", "X-Export-Error, X-Export-Records")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	cw := &countWriter{w: w}
	n, err := write(cw)
	if err != nil && cw.n == 0 {
		w.Header().Del("Trailer")
		s.reply(w, nil, err)
		return
	}
	if err != nil {
		w.Header().Set("X-Export-Error", err.Error())
	}
	w.Header().Set("X-Export-Records", strconv.Itoa(n))
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.reply(w, nil, fmt.Errorf("%w: body: %v", ErrInvalid, err))
		return false
	}
	return true
}

func (s *Server) reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code, kind := http.StatusInternalServerError, ""
		switch {
		case errors.Is(err, ErrInvalid):
			code, kind = http.StatusBadRequest, "invalid"
		case errors.Is(err, ErrNotFound):
			code, kind = http.StatusNotFound, "not_found"
		case errors.Is(err, ErrUnavailable):
			code, kind = http.StatusNotImplemented, "unavailable"
		}
		body := errorBody{Error: err.Error(), Kind: kind}
		var re *RefusedError
		if errors.As(err, &re) {
			body.Problems = re.Problems
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Warn("control: write reply", "err", err)
	}
}
