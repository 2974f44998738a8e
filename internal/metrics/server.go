package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Limits of the TCP listener (metrics.listen).
const (
	// MaxScrapes is how many scrapes the listener serves at once; another
	// one is answered 503 at once, so a misconfigured scraper cannot pile
	// up work on a small board.
	MaxScrapes = 2
	// ServerTimeout bounds reading a request's header, writing its answer
	// and keeping an idle connection.
	ServerTimeout = 10 * time.Second
	// ShutdownTimeout bounds how long Serve waits for scrapes in progress
	// once its context ends.
	ShutdownTimeout = 2 * time.Second
)

// WriteFunc writes the exposition to w; the agent's is
// control.Backend.Metrics.
type WriteFunc func(ctx context.Context, w io.Writer) error

// Server serves GET /metrics on TCP (config metrics.listen). Create it
// with Listen, run it with Serve.
type Server struct {
	ln    net.Listener
	write WriteFunc
	log   *slog.Logger
	slots chan struct{} // a token per scrape in progress
}

// Listen opens the TCP listener at addr (host:port). write renders each
// scrape. An address in use is an error naming it.
func Listen(addr string, write WriteFunc, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	return &Server{ln: ln, write: write, log: log, slots: make(chan struct{}, MaxScrapes)}, nil
}

// Addr returns the address listened on (with the port chosen for ":0").
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers scrapes until ctx ends, then waits up to ShutdownTimeout
// for those in progress and closes the listener. It returns nil after a
// shutdown by ctx.
func (s *Server) Serve(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "hazmon: metrics at /metrics\n")
	})
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: ServerTimeout,
		ReadTimeout:       ServerTimeout,
		WriteTimeout:      ServerTimeout,
		IdleTimeout:       ServerTimeout,
		MaxHeaderBytes:    8 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(s.ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics.listen %s: %w", s.ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics.listen %s: %w", s.ln.Addr(), err)
	}
	return nil
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		http.Error(w, "hazmon: busy with other scrapes; try again", http.StatusServiceUnavailable)
		return
	}
	var buf bytes.Buffer
	if err := s.write(r.Context(), &buf); err != nil {
		s.log.Warn("metrics: scrape failed", "err", err)
		http.Error(w, "hazmon: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	_, _ = w.Write(buf.Bytes())
}
