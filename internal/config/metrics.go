package config

import (
	"net"
	"strconv"
)

// DefaultMetricsListen is the address the README suggests for
// metrics.listen: loopback only, on the port commonly taken by
// Prometheus exporters of this kind. metrics.listen itself is off by
// default; the metrics are always on the control socket.
const DefaultMetricsListen = "127.0.0.1:9464"

// Metrics configures the Prometheus endpoint on TCP. The same metrics are
// served on the control socket (GET /metrics, `hazmon metrics`) whether
// or not Listen is set.
type Metrics struct {
	// Listen is host:port of a plain-HTTP listener serving GET /metrics,
	// "" (default) for none. The host is an IP address or localhost; a
	// non-loopback address gets a warning: the endpoint has no
	// authentication.
	Listen string `yaml:"listen,omitempty"`
}

// validateMetrics checks metrics.listen: host:port with a port 1..65535
// and an IP (or localhost, or empty for every interface) as the host; it
// warns when the address is reachable from other hosts.
func (c *Config) validateMetrics(k *checker) {
	addr := c.Metrics.Listen
	if addr == "" {
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		k.errf("metrics.listen", "%q is not host:port (e.g. %s)", addr, DefaultMetricsListen)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		k.errf("metrics.listen", "port %q is not a number 1..65535", port)
		return
	}
	var ip net.IP
	switch host {
	case "localhost":
		return
	case "":
		ip = net.IPv4zero
	default:
		if ip = net.ParseIP(host); ip == nil {
			k.errf("metrics.listen", "host %q: use an IP address (127.0.0.1, ::1, or the board's own) or localhost", host)
			return
		}
	}
	if !ip.IsLoopback() {
		k.warnf("metrics.listen", "%s is reachable from other hosts and has no authentication: anyone on the network can read the site's metrics; prefer %s and a tunnel or reverse proxy", addr, DefaultMetricsListen)
	}
}
