// Package netguard is the outbound HTTP SSRF guard of PRODUCT §6.3, used by
// the flow engine's action-http node, KB URL ingestion and outbound webhooks.
//
// A Guard hands out *http.Client values whose transport, for every request
// (the first one and every redirect hop):
//
//   - accepts only http and https URLs;
//   - resolves the host exactly once (IP literals, including the legacy
//     inet_aton spellings such as 2130706433 or 0x7f.1, are not resolved) and
//     refuses the request when any resolved address is loopback, private,
//     link-local, CGNAT, multicast, unspecified, broadcast, reserved, IPv6 ULA
//     or site-local, or an IPv4-mapped/-compatible/NAT64/6to4/Teredo form of
//     one of these;
//   - dials only the addresses it checked (the connection is pinned; the dialer
//     never resolves, which defeats DNS rebinding), while TLS still verifies the
//     URL's host name;
//   - follows at most Options.MaxRedirects redirects.
//
// Environment proxies (HTTP_PROXY and friends) are never used: a proxy would
// make the pinned dial meaningless. Response bodies should be read with
// ReadLimited.
package netguard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxRedirects is the redirect limit when Options.MaxRedirects is 0.
const DefaultMaxRedirects = 5

// maxPinnedTransports bounds the per-address transport cache; the least
// recently used transport is dropped (and its idle connections closed) beyond it.
const maxPinnedTransports = 64

type resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configures a Guard.
type Options struct {
	// AllowedHosts exempts targets from the address checks: exact host names
	// (case-insensitive, any port), CIDRs such as "127.0.0.1/32", or single
	// addresses. HTTP_ALLOWED_HOSTS.
	AllowedHosts []string
	// BlockPrivate turns the address checks on; true in every real config
	// (HTTP_BLOCK_PRIVATE_NETWORKS). false disables them entirely; the scheme
	// check, pinning and the redirect limit stay.
	BlockPrivate bool
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
	// MaxRedirects is the redirect limit: 0 means DefaultMaxRedirects (5); a
	// negative value follows no redirect and returns the 3xx response as is.
	MaxRedirects int
	// Timeout is the overall client timeout; 0 means none (callers use ctx).
	Timeout time.Duration
}

// Guard checks outbound URLs and builds clients that enforce the checks.
// It is safe for concurrent use.
type Guard struct {
	names        map[string]bool // exempt host names: lower case, no trailing dot
	prefixes     []netip.Prefix  // exempt address ranges
	blockPrivate bool
	resolver     resolver
	maxRedirects int
	timeout      time.Duration

	rt *pinningTransport

	// dial opens the pinned connection; tests replace it to observe (and
	// redirect) what reaches the network.
	dial func(ctx context.Context, network, address string) (net.Conn, error)
	// tlsConfig, when set, is the base TLS configuration of every transport
	// (tests trust their httptest certificate through it).
	tlsConfig *tls.Config
}

// New builds a Guard. An AllowedHosts entry that is neither a host name, an
// address nor a CIDR is an error.
func New(opts Options) (*Guard, error) {
	g := &Guard{
		names:        map[string]bool{},
		blockPrivate: opts.BlockPrivate,
		resolver:     opts.Resolver,
		maxRedirects: opts.MaxRedirects,
		timeout:      opts.Timeout,
		dial:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	if g.resolver == nil {
		g.resolver = net.DefaultResolver
	}
	if g.maxRedirects == 0 {
		g.maxRedirects = DefaultMaxRedirects
	}
	for _, raw := range opts.AllowedHosts {
		if err := g.allow(raw); err != nil {
			return nil, err
		}
	}
	g.rt = &pinningTransport{g: g, pins: map[string]*pinned{}}
	return g, nil
}

// CheckAllowedHost reports whether entry is a valid AllowedHosts entry (a host name, an IP or a CIDR),
// the rule New applies; configuration checks use it.
func CheckAllowedHost(entry string) error {
	return (&Guard{names: map[string]bool{}}).allow(entry)
}

func (g *Guard) allow(raw string) error {
	entry := strings.TrimSpace(raw)
	switch {
	case entry == "":
		return errors.New("netguard: empty AllowedHosts entry")
	case strings.Contains(entry, "/"):
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			return fmt.Errorf("netguard: AllowedHosts entry %q is not a valid CIDR", entry)
		}
		g.prefixes = append(g.prefixes, p.Masked())
		return nil
	}
	if ip, ok := parseHostIP(entry); ok {
		ip = ip.WithZone("")
		g.prefixes = append(g.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
		return nil
	}
	name := canonicalName(entry)
	if !validHostName(name) {
		return fmt.Errorf("netguard: AllowedHosts entry %q is neither a host name nor a CIDR", entry)
	}
	g.names[name] = true
	return nil
}

// canonicalName lower-cases a host name and drops one trailing dot.
func canonicalName(host string) string {
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

func validHostName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Client returns a client whose every request, including each redirect hop,
// goes through the guard. Clients are cheap; all of them share one transport
// cache (keep-alive connections keyed by the pinned addresses), so callers may
// adjust their copy (for example Timeout) without affecting others.
func (g *Guard) Client() *http.Client {
	return &http.Client{
		Transport:     g.rt,
		CheckRedirect: g.checkRedirect,
		Timeout:       g.timeout,
	}
}

// CloseIdleConnections closes the idle keep-alive connections of every cached
// transport.
func (g *Guard) CloseIdleConnections() { g.rt.CloseIdleConnections() }

// CheckURL checks the scheme and the resolved addresses of raw without
// connecting. It resolves the host once; a later request resolves again.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// *url.Error repeats the whole URL, which may carry credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("netguard: invalid URL: %w", err)
	}
	_, err = g.check(ctx, u)
	return err
}

// check is the full check of one request target: scheme, a single resolution,
// every address. It returns the checked addresses, which are the only ones the
// connection may use.
func (g *Guard) check(ctx context.Context, u *url.URL) ([]netip.Addr, error) {
	if err := checkScheme(u); err != nil {
		return nil, err
	}
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("netguard: URL has no host")
	}
	var addrs []netip.Addr
	if ip, ok := parseHostIP(host); ok {
		addrs = []netip.Addr{ip}
	} else {
		found, err := g.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("netguard: resolve %q: %w", host, err)
		}
		// A resolver may return IPv4 answers in IPv4-mapped form
		// (net.Resolver.LookupNetIP does); they are IPv4 addresses.
		for _, ip := range found {
			if ip.Is4In6() {
				ip = ip.Unmap()
			}
			if !slices.Contains(addrs, ip) {
				addrs = append(addrs, ip)
			}
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("netguard: resolve %q: no addresses", host)
		}
	}
	if err := g.checkAddrs(host, addrs); err != nil {
		return nil, err
	}
	return addrs, nil
}

func checkScheme(u *url.URL) error {
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return nil
	}
	return &BlockedError{Host: u.Hostname(), Reason: fmt.Sprintf("scheme %q is not allowed (only http and https)", u.Scheme)}
}

// checkAddrs refuses the target when any of its addresses is refused: one
// private answer among public ones is enough.
func (g *Guard) checkAddrs(host string, addrs []netip.Addr) error {
	for _, ip := range addrs {
		if !ip.IsValid() {
			return &BlockedError{Host: host, Reason: "resolver returned an invalid address"}
		}
	}
	if !g.blockPrivate || g.names[canonicalName(host)] {
		return nil
	}
	for _, ip := range addrs {
		if g.exemptAddr(ip) {
			continue
		}
		if reason := blockReason(ip); reason != "" {
			return &BlockedError{Host: host, IP: ip, Reason: reason}
		}
	}
	return nil
}

func (g *Guard) exemptAddr(ip netip.Addr) bool {
	ip = ip.WithZone("")
	for _, p := range g.prefixes {
		if p.Contains(ip) || ip.Is4In6() && p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// checkRedirect enforces the redirect limit and refuses, before anything is
// sent, a redirect to another scheme or to a refused IP literal. Host names are
// resolved and checked by the transport, once per hop.
func (g *Guard) checkRedirect(req *http.Request, via []*http.Request) error {
	if g.maxRedirects < 0 {
		return http.ErrUseLastResponse
	}
	if len(via) > g.maxRedirects {
		return fmt.Errorf("%w: stopped after %d", ErrTooManyRedirects, g.maxRedirects)
	}
	if err := checkScheme(req.URL); err != nil {
		return err
	}
	if ip, ok := parseHostIP(req.URL.Hostname()); ok {
		return g.checkAddrs(req.URL.Hostname(), []netip.Addr{ip})
	}
	return nil
}

// dialPinned dials the checked addresses, in order, at the port of address;
// the host part of address is never resolved. The addresses are checked again
// so that nothing unchecked can be dialled even if a caller misuses the
// transport.
func (g *Guard) dialPinned(ctx context.Context, network, address string, addrs []netip.Addr) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("netguard: dial %q: %w", address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("netguard: dial: bad port %q", portStr)
	}
	if len(addrs) == 0 {
		return nil, &BlockedError{Host: host, Reason: "no checked address to dial"}
	}
	if err := g.checkAddrs(host, addrs); err != nil {
		return nil, err
	}
	var errs []error
	for _, ip := range addrs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		conn, err := g.dial(ctx, network, netip.AddrPortFrom(ip.Unmap(), uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// pinningTransport checks each request and sends it through a transport whose
// dialer can reach only the addresses that were checked.
type pinningTransport struct {
	g    *Guard
	mu   sync.Mutex
	pins map[string]*pinned
	tick uint64
}

type pinned struct {
	t    *http.Transport
	used uint64
}

func (rt *pinningTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("netguard: request has no URL")
	}
	addrs, err := rt.g.check(req.Context(), req.URL)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	return rt.transport(addrs).RoundTrip(req)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// transport returns the cached transport pinned to exactly addrs, creating it
// (and evicting the least recently used one beyond the cap) when needed.
func (rt *pinningTransport) transport(addrs []netip.Addr) *http.Transport {
	keys := make([]string, len(addrs))
	for i, ip := range addrs {
		keys[i] = ip.String()
	}
	key := strings.Join(keys, ",")

	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.tick++
	if p, ok := rt.pins[key]; ok {
		p.used = rt.tick
		return p.t
	}
	if len(rt.pins) >= maxPinnedTransports {
		oldKey, oldest := "", uint64(0)
		for k, p := range rt.pins {
			if oldKey == "" || p.used < oldest {
				oldKey, oldest = k, p.used
			}
		}
		rt.pins[oldKey].t.CloseIdleConnections()
		delete(rt.pins, oldKey)
	}
	g := rt.g
	checked := slices.Clone(addrs)
	t := &http.Transport{
		Proxy: nil, // never: the pinned dial must reach the target itself
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			return g.dialPinned(ctx, network, address, checked)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if g.tlsConfig != nil {
		// ServerName stays empty: the transport sets it to the URL's host, so
		// the certificate is verified against the name, not the pinned address.
		t.TLSClientConfig = g.tlsConfig.Clone()
	}
	rt.pins[key] = &pinned{t: t, used: rt.tick}
	return t
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the cache.
func (rt *pinningTransport) CloseIdleConnections() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, p := range rt.pins {
		p.t.CloseIdleConnections()
	}
}
