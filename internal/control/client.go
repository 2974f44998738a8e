package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// DialTimeout bounds connecting to the socket: a local agent answers at
// once, so a longer wait only delays "agent not running".
const DialTimeout = time.Second

// Client talks to the agent's control socket. It implements Backend.
// Requests end with their context; there is no other overall timeout (an
// output test lasts as long as the pulse).
type Client struct {
	// Hint is added to a NotRunningError: where the socket path came from
	// and how to point elsewhere (set by the CLI; "" adds nothing).
	Hint string
	path string
	hc   *http.Client
}

var _ Backend = (*Client)(nil)

// NewClient returns a client for the socket at path. It does not connect.
func NewClient(path string) *Client {
	d := net.Dialer{Timeout: DialTimeout}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// Path returns the socket path.
func (c *Client) Path() string { return c.path }

// Status implements Backend.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Probe implements Backend.
func (c *Client) Probe(ctx context.Context, req ProbeRequest) (ProbeResult, error) {
	var res ProbeResult
	err := c.do(ctx, http.MethodPost, "/v1/probe", req, &res)
	return res, err
}

// OutputTest implements Backend.
func (c *Client) OutputTest(ctx context.Context, name string, d time.Duration) (OutputTestResult, error) {
	var res OutputTestResult
	err := c.do(ctx, http.MethodPost, "/v1/output/test", OutputTestRequest{Name: name, ForS: seconds(d)}, &res)
	return res, err
}

// OutputRestore implements Backend.
func (c *Client) OutputRestore(ctx context.Context, name string) (OutputRestoreResult, error) {
	var res OutputRestoreResult
	err := c.do(ctx, http.MethodPost, "/v1/output/restore", OutputRestoreRequest{Name: name}, &res)
	return res, err
}

// Calibrate implements Backend.
func (c *Client) Calibrate(ctx context.Context, sensor string, d time.Duration) (CalibrateResult, error) {
	var res CalibrateResult
	err := c.do(ctx, http.MethodPost, "/v1/calibrate", CalibrateRequest{Sensor: sensor, ForS: seconds(d)}, &res)
	return res, err
}

// Reload implements Backend.
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var res ReloadResult
	err := c.do(ctx, http.MethodPost, "/v1/reload", struct{}{}, &res)
	return res, err
}

// BufferStats implements Backend.
func (c *Client) BufferStats(ctx context.Context) (BufferStats, error) {
	var st BufferStats
	err := c.do(ctx, http.MethodGet, "/v1/buffer/stats", nil, &st)
	return st, err
}

// BufferExport implements Backend: the agent's export is copied to w as it
// arrives. An error the agent met after it began sending is returned
// after the copy.
func (c *Client) BufferExport(ctx context.Context, since time.Time, format string, w io.Writer) (int, error) {
	q := url.Values{"format": {format}}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	return c.stream(ctx, "/v1/buffer/export?"+q.Encode(), w)
}

// BufferDead implements Backend, as BufferExport.
func (c *Client) BufferDead(ctx context.Context, format string, w io.Writer) (int, error) {
	return c.stream(ctx, "/v1/buffer/dead?"+url.Values{"format": {format}}.Encode(), w)
}

// stream copies a streamed export to w; an error the agent met after it
// began sending is returned after the copy.
func (c *Client) stream(ctx context.Context, path string, w io.Writer) (int, error) {
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, decodeError(resp)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return 0, fmt.Errorf("control: buffer export: %w", err)
	}
	if msg := resp.Trailer.Get("X-Export-Error"); msg != "" {
		return 0, fmt.Errorf("control: buffer export stopped: %s", msg)
	}
	var n int
	fmt.Sscan(resp.Trailer.Get("X-Export-Records"), &n)
	return n, nil
}

// Metrics implements Backend: the agent's Prometheus text exposition is
// copied to w.
func (c *Client) Metrics(ctx context.Context, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, "/v1/metrics", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("control: metrics: %w", err)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("control: encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	resp, err := c.send(ctx, method, path, rd)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("control: decode reply of %s: %w", path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	if _, err := os.Stat(c.path); errors.Is(err, os.ErrNotExist) {
		return nil, &NotRunningError{Path: c.path, Hint: c.Hint}
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://hazmon"+path, body)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	switch {
	case err == nil:
		return resp, nil
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, os.ErrNotExist):
		return nil, &NotRunningError{Path: c.path, Why: "stale socket file, nobody listening", Hint: c.Hint}
	case errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("control socket %s: permission denied (run as root or as a member of group %s)", c.path, SocketGroup)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("control: %s: %w", path, ctx.Err())
	}
	return nil, fmt.Errorf("control socket %s: %w", c.path, err)
}

// decodeError turns an error reply back into an error wrapping the kind.
func decodeError(resp *http.Response) error {
	var eb errorBody
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
		eb.Error = fmt.Sprintf("agent replied %s: %s", resp.Status, bytes.TrimSpace(data))
	}
	var kind error
	switch resp.StatusCode {
	case http.StatusBadRequest:
		kind = ErrInvalid
	case http.StatusNotFound:
		kind = ErrNotFound
	case http.StatusNotImplemented:
		kind = ErrUnavailable
	}
	if len(eb.Problems) > 0 {
		what, _, _ := strings.Cut(eb.Error, ":\n")
		return &RefusedError{What: what, Problems: eb.Problems}
	}
	if kind != nil {
		return &remoteError{msg: eb.Error, kind: kind}
	}
	return errors.New(eb.Error)
}

// remoteError is the agent's error message, matching its kind with errors.Is.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }
