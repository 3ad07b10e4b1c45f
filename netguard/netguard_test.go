package netguard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeResolver answers from a table and counts its calls per host. A host
// with several answer lists gets them in turn (the last one repeats), which
// models DNS rebinding.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	errs    map[string]error
	calls   map[string]int
}

func newResolver() *fakeResolver {
	return &fakeResolver{answers: map[string][][]netip.Addr{}, errs: map[string]error{}, calls: map[string]int{}}
}

// set adds one answer list for host (call it again for the next lookup's answer).
func (r *fakeResolver) set(host string, ips ...string) *fakeResolver {
	var list []netip.Addr
	for _, s := range ips {
		list = append(list, netip.MustParseAddr(s))
	}
	r.answers[host] = append(r.answers[host], list)
	return r
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	host = strings.ToLower(strings.TrimSuffix(host, ".")) // DNS names are case-insensitive
	n := r.calls[host]
	r.calls[host]++
	if network != "ip" {
		return nil, fmt.Errorf("unexpected network %q", network)
	}
	if err := r.errs[host]; err != nil {
		return nil, err
	}
	lists := r.answers[host]
	if len(lists) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return lists[min(n, len(lists)-1)], nil
}

func (r *fakeResolver) count(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

func (r *fakeResolver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		n += c
	}
	return n
}

// dialLog records every address the guard's dialer is asked to dial. When
// route maps the address to another one, that one is dialled instead (to
// stand a local test server in for a "public" documentation address);
// otherwise the address itself is dialled.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
	route map[string]string
}

func (d *dialLog) dial(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, address)
	target := address
	if to, ok := d.route[address]; ok {
		target = to
	}
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, network, target)
}

func (d *dialLog) dialled() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

func newGuard(t *testing.T, opts Options) (*Guard, *dialLog) {
	t.Helper()
	g, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	log := &dialLog{route: map[string]string{}}
	g.dial = log.dial
	t.Cleanup(g.CloseIdleConnections)
	return g, log
}

func get(t *testing.T, c *http.Client, rawURL string) (*http.Response, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := ReadLimited(resp.Body, MaxResponseBytes)
	return resp, body, err
}

func okServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok host=%s", r.Host)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func serverPort(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// wantBlocked asserts err is a refusal (through any wrapping) and, when ip is
// not empty, that it names that address and a reason containing reason.
func wantBlocked(t *testing.T, err error, ip, reason string) {
	t.Helper()
	if !errors.Is(err, ErrBlocked) {
		t.Fatalf("error %v (%T) does not wrap ErrBlocked", err, err)
	}
	var be *BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("error %v is not a *BlockedError", err)
	}
	if ip != "" && be.IP.String() != ip {
		t.Errorf("BlockedError.IP = %s, want %s (%v)", be.IP, ip, err)
	}
	if !strings.Contains(be.Reason, reason) {
		t.Errorf("BlockedError.Reason = %q, want it to contain %q", be.Reason, reason)
	}
}

// TestBlockedTargets checks each refused target twice: with CheckURL and with
// a real request through Client, which must fail with ErrBlocked before
// anything is dialled. The resolver answers a public documentation address for
// any unknown name, so a literal that slipped through to the resolver would be
// dialled and fail the test.
func TestBlockedTargets(t *testing.T) {
	tests := []struct {
		url    string
		ip     string // the refused address as reported
		reason string
	}{
		{"http://127.0.0.1/", "127.0.0.1", "loopback"},
		{"http://127.0.0.1:8080/x?y=1", "127.0.0.1", "loopback"},
		{"https://127.0.0.1/", "127.0.0.1", "loopback"},
		{"http://[::1]/", "::1", "loopback"},
		{"http://[::1]:9000/", "::1", "loopback"},
		{"http://10.1.2.3/", "10.1.2.3", "private network"},
		{"http://172.16.0.1/", "172.16.0.1", "private network"},
		{"http://192.168.1.1/", "192.168.1.1", "private network"},
		{"http://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud metadata"},
		{"http://100.64.0.1/", "100.64.0.1", "carrier-grade NAT"},
		{"http://0.0.0.0/", "0.0.0.0", "unspecified"},
		{"http://0.1.2.3/", "0.1.2.3", "this network"},
		{"http://255.255.255.255/", "255.255.255.255", "broadcast"},
		{"http://224.0.0.1/", "224.0.0.1", "multicast"},
		{"http://[::]/", "::", "unspecified"},
		{"http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", "loopback, IPv4-mapped"},
		{"http://[::ffff:7f00:1]/", "::ffff:127.0.0.1", "loopback, IPv4-mapped"},
		{"http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1", "private network, IPv4-mapped"},
		{"http://[::127.0.0.1]/", "::7f00:1", "loopback, IPv4-compatible"},
		{"http://[64:ff9b::10.0.0.1]/", "64:ff9b::a00:1", "NAT64"},
		{"http://[2002:a9fe:a9fe::]/", "2002:a9fe:a9fe::", "6to4"},
		{"http://[fc00::1]/", "fc00::1", "unique local"},
		{"http://[fd12:3456::1]/", "fd12:3456::1", "unique local"},
		{"http://[fe80::1]/", "fe80::1", "link-local"},
		{"http://[fe80::1%25eth0]/", "fe80::1%eth0", "link-local"},
		{"http://[fec0::1]/", "fec0::1", "site-local"},
		{"http://[ff02::1]/", "ff02::1", "multicast"},
		// Legacy spellings: decoded as inet_aton would, never resolved.
		{"http://2130706433/", "127.0.0.1", "loopback"},
		{"http://0x7f000001/", "127.0.0.1", "loopback"},
		{"http://0x7f.1/", "127.0.0.1", "loopback"},
		{"http://0177.0.0.1/", "127.0.0.1", "loopback"},
		{"http://127.1/", "127.0.0.1", "loopback"},
		{"http://127.0.0.1./", "127.0.0.1", "loopback"},
		{"http://0/", "0.0.0.0", "unspecified"},
		{"http://169.16689662/", "169.254.169.254", "cloud metadata"},
		{"http://012.1.2.3/", "10.1.2.3", "private network"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			res := newResolver()
			g, log := newGuard(t, Options{BlockPrivate: true, Resolver: res})
			log.route = nil
			res.answers = nil // every lookup fails: literals must not reach the resolver

			wantBlocked(t, g.CheckURL(context.Background(), tt.url), tt.ip, tt.reason)
			_, _, err := get(t, g.Client(), tt.url)
			wantBlocked(t, err, tt.ip, tt.reason)
			var ue *url.Error
			if !errors.As(err, &ue) {
				t.Errorf("Client error %T is not a *url.Error", err)
			}
			if n := res.total(); n != 0 {
				t.Errorf("the resolver was called %d times for an IP literal", n)
			}
			if d := log.dialled(); len(d) != 0 {
				t.Errorf("dialled %v for a refused target", d)
			}
		})
	}
}

// TestBlockedNames covers DNS names whose answers include a refused address.
func TestBlockedNames(t *testing.T) {
	tests := []struct {
		name   string
		answer []string
		ip     string
		reason string
	}{
		{"internal.example", []string{"10.0.0.5"}, "10.0.0.5", "private network"},
		{"mixed.example", []string{"203.0.113.7", "192.168.0.9"}, "192.168.0.9", "private network"},
		{"mixed6.example", []string{"2001:db8::7", "fd00::1"}, "fd00::1", "unique local"},
		{"metadata.example", []string{"169.254.169.254"}, "169.254.169.254", "cloud metadata"},
		{"localhost", []string{"127.0.0.1", "::1"}, "127.0.0.1", "loopback"},
		// net.Resolver returns A records in IPv4-mapped form; they are reported as IPv4.
		{"mapped.example", []string{"::ffff:10.0.0.5"}, "10.0.0.5", "private network"},
		{"nat64.example", []string{"64:ff9b::a9fe:a9fe"}, "64:ff9b::a9fe:a9fe", "NAT64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := newResolver().set(tt.name, tt.answer...)
			g, log := newGuard(t, Options{BlockPrivate: true, Resolver: res})
			wantBlocked(t, g.CheckURL(context.Background(), "http://"+tt.name+"/"), tt.ip, tt.reason)
			_, _, err := get(t, g.Client(), "http://"+tt.name+":8080/path")
			wantBlocked(t, err, tt.ip, tt.reason)
			if n := res.count(tt.name); n != 2 {
				t.Errorf("resolver calls = %d, want 2 (once per check)", n)
			}
			if d := log.dialled(); len(d) != 0 {
				t.Errorf("dialled %v for a refused target", d)
			}
		})
	}
}

func TestBlockedErrorMessage(t *testing.T) {
	g, _ := newGuard(t, Options{BlockPrivate: true, Resolver: newResolver().set("internal.example", "10.0.0.5")})
	err := g.CheckURL(context.Background(), "http://user:secret@internal.example/x")
	want := `ssrf-blocked: 10.0.0.5 (private network) for host "internal.example"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
	err = g.CheckURL(context.Background(), "ftp://user:secret@files.example/")
	if err == nil || err.Error() != `ssrf-blocked: scheme "ftp" is not allowed (only http and https) for host "files.example"` {
		t.Fatalf("scheme error = %v", err)
	}
	// Neither the credentials nor the URL end up in the guard's errors.
	for _, raw := range []string{"http://user:secret@internal.example/x", "http://user:secret@[::1/", "ftp://user:secret@x/"} {
		if err := g.CheckURL(context.Background(), raw); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("CheckURL(%q) = %v: want an error without the password", raw, err)
		}
	}
}

func TestSchemes(t *testing.T) {
	res := newResolver().set("files.example", "203.0.113.5")
	g, log := newGuard(t, Options{BlockPrivate: true, Resolver: res})
	for _, raw := range []string{
		"ftp://files.example/pub/x",
		"ftp://203.0.113.5/",
		"file:///etc/passwd",
		"file://localhost/etc/passwd",
		"gopher://files.example/",
		"ws://files.example/",
		"data:text/plain,hello",
		"//files.example/no-scheme",
	} {
		if err := g.CheckURL(context.Background(), raw); !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), "scheme") {
			t.Errorf("CheckURL(%q) = %v, want a scheme refusal", raw, err)
		}
		req, err := http.NewRequest(http.MethodGet, raw, nil)
		if err != nil {
			continue // net/http refuses it itself
		}
		if _, err := g.Client().Do(req); !errors.Is(err, ErrBlocked) {
			t.Errorf("Do(%q) = %v, want ErrBlocked", raw, err)
		}
	}
	if res.total() != 0 || len(log.dialled()) != 0 {
		t.Errorf("a refused scheme was resolved (%d) or dialled (%v)", res.total(), log.dialled())
	}
	// Upper-case schemes are the same schemes.
	if err := g.CheckURL(context.Background(), "HTTPS://files.example/"); err != nil {
		t.Errorf("HTTPS upper case: %v", err)
	}
}

func TestCheckURLPublic(t *testing.T) {
	res := newResolver().
		set("public.example", "198.51.100.1", "2001:db8::2").
		set("mapped.example", "::ffff:203.0.113.9")
	g, log := newGuard(t, Options{BlockPrivate: true, Resolver: res})
	for _, raw := range []string{
		"http://203.0.113.10/",
		"https://[2001:db8::1]:8443/a",
		"http://public.example/",
		"https://PUBLIC.example./x",
		"http://mapped.example/",
		"http://8.8.8.8/",
		"http://172.32.0.1/",
		"http://100.128.0.1/",
		"http://[::ffff:8.8.8.8]/",
	} {
		if err := g.CheckURL(context.Background(), raw); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", raw, err)
		}
	}
	if len(log.dialled()) != 0 {
		t.Errorf("CheckURL dialled %v", log.dialled())
	}
}

func TestResolverFailures(t *testing.T) {
	res := newResolver().set("empty.example")
	res.errs["broken.example"] = errors.New("resolver exploded")
	g, _ := newGuard(t, Options{BlockPrivate: true, Resolver: res})
	for host, want := range map[string]string{
		"broken.example":  "resolver exploded",
		"empty.example":   "no addresses",
		"unknown.example": "no such host",
	} {
		err := g.CheckURL(context.Background(), "http://"+host+"/")
		if err == nil || errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error = %v, want a non-SSRF error containing %q", host, err, want)
		}
		if _, _, err := get(t, g.Client(), "http://"+host+"/"); err == nil || errors.Is(err, ErrBlocked) {
			t.Errorf("%s: Do error = %v", host, err)
		}
	}
	if err := g.CheckURL(context.Background(), "http:///path"); err == nil || errors.Is(err, ErrBlocked) {
		t.Errorf("missing host: %v", err)
	}
}

// TestAllowedHostEndToEnd: an exemption reaches a real local server.
func TestAllowedHostEndToEnd(t *testing.T) {
	srv := okServer(t)
	port := serverPort(t, srv)

	t.Run("cidr", func(t *testing.T) {
		g, log := newGuard(t, Options{BlockPrivate: true, AllowedHosts: []string{"127.0.0.1/32"}, Resolver: newResolver()})
		resp, body, err := get(t, g.Client(), srv.URL+"/hello")
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "ok") {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		// Keep-alive: a second request reuses the pinned connection.
		if _, _, err := get(t, g.Client(), srv.URL+"/again"); err != nil {
			t.Fatalf("second GET: %v", err)
		}
		if d := log.dialled(); len(d) != 1 || d[0] != "127.0.0.1:"+port {
			t.Errorf("dialled %v, want one dial of 127.0.0.1:%s", d, port)
		}
		// Other loopback addresses are not covered by the /32.
		if _, _, err := get(t, g.Client(), "http://127.0.0.2:"+port+"/"); !errors.Is(err, ErrBlocked) {
			t.Errorf("127.0.0.2: %v, want ErrBlocked", err)
		}
	})

	t.Run("bare address", func(t *testing.T) {
		g, _ := newGuard(t, Options{BlockPrivate: true, AllowedHosts: []string{" 127.0.0.1 "}, Resolver: newResolver()})
		if _, _, err := get(t, g.Client(), srv.URL); err != nil {
			t.Fatalf("GET: %v", err)
		}
	})

	t.Run("host name", func(t *testing.T) {
		res := newResolver().set("fake.test", "127.0.0.1").set("other.test", "127.0.0.1")
		g, log := newGuard(t, Options{BlockPrivate: true, AllowedHosts: []string{"Fake.Test"}, Resolver: res})
		resp, body, err := get(t, g.Client(), "http://FAKE.test.:"+port+"/")
		if err != nil {
			t.Fatalf("GET fake.test: %v", err)
		}
		if resp.StatusCode != 200 || string(body) != "ok host=FAKE.test.:"+port {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if d := log.dialled(); len(d) != 1 || d[0] != "127.0.0.1:"+port {
			t.Errorf("dialled %v", d)
		}
		// The same address under a name that is not exempt is refused.
		_, _, err = get(t, g.Client(), "http://other.test:"+port+"/")
		wantBlocked(t, err, "127.0.0.1", "loopback")
		// Exempting a name does not exempt its address.
		_, _, err = get(t, g.Client(), srv.URL)
		wantBlocked(t, err, "127.0.0.1", "loopback")
	})

	t.Run("not allowed", func(t *testing.T) {
		g, log := newGuard(t, Options{BlockPrivate: true, Resolver: newResolver()})
		_, _, err := get(t, g.Client(), srv.URL)
		wantBlocked(t, err, "127.0.0.1", "loopback")
		if len(log.dialled()) != 0 {
			t.Errorf("dialled %v", log.dialled())
		}
	})
}

// TestRedirectToBlocked: an allowed server redirects to a refused target; the
// hop is checked again and refused before it is dialled.
func TestRedirectToBlocked(t *testing.T) {
	var srvURL, port string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-ip":
			http.Redirect(w, r, "http://10.0.0.1/", http.StatusFound)
		case "/to-name":
			http.Redirect(w, r, "http://metadata.test/latest/meta-data/", http.StatusFound)
		case "/to-mixed":
			http.Redirect(w, r, "http://mixed.test/", http.StatusFound)
		case "/to-odd":
			http.Redirect(w, r, "http://0xa000001/", http.StatusMovedPermanently) // 10.0.0.1
		case "/to-odd-exempt":
			http.Redirect(w, r, "http://2130706433:"+port+"/final", http.StatusMovedPermanently) // 127.0.0.1
		case "/to-ftp":
			http.Redirect(w, r, "ftp://files.test/", http.StatusFound)
		case "/to-self":
			http.Redirect(w, r, srvURL+"/final", http.StatusTemporaryRedirect)
		case "/final":
			io.WriteString(w, "final")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	srvURL = srv.URL
	port = serverPort(t, srv)

	tests := []struct {
		path, ip, reason string
		lookups          string // the name that must have been resolved exactly once
	}{
		{"/to-ip", "10.0.0.1", "private network", ""},
		{"/to-name", "169.254.169.254", "cloud metadata", "metadata.test"},
		{"/to-mixed", "10.9.9.9", "private network", "mixed.test"},
		{"/to-odd", "10.0.0.1", "private network", ""},
		{"/to-ftp", "", "scheme", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res := newResolver().set("metadata.test", "169.254.169.254").set("mixed.test", "203.0.113.1", "10.9.9.9")
			g, log := newGuard(t, Options{BlockPrivate: true, AllowedHosts: []string{"127.0.0.1/32"}, Resolver: res})
			_, _, err := get(t, g.Client(), srv.URL+tt.path)
			wantBlocked(t, err, tt.ip, tt.reason)
			if d := log.dialled(); len(d) != 1 || d[0] != "127.0.0.1:"+port {
				t.Errorf("dialled %v, want only the allowed server", d)
			}
			if tt.lookups != "" && res.count(tt.lookups) != 1 {
				t.Errorf("%s resolved %d times, want 1", tt.lookups, res.count(tt.lookups))
			}
		})
	}

	t.Run("allowed hops", func(t *testing.T) {
		g, log := newGuard(t, Options{BlockPrivate: true, AllowedHosts: []string{"127.0.0.1"}, Resolver: newResolver()})
		for _, path := range []string{"/to-self", "/to-odd-exempt"} {
			_, body, err := get(t, g.Client(), srv.URL+path)
			if err != nil || string(body) != "final" {
				t.Fatalf("%s: got %q, %v", path, body, err)
			}
		}
		// 2130706433 was dialled as the address it denotes.
		for _, d := range log.dialled() {
			if d != "127.0.0.1:"+port {
				t.Errorf("dialled %s", d)
			}
		}
	})
}

func TestRedirectLimit(t *testing.T) {
	// /r/N redirects to /r/N-1; /r/0 answers.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if n == 0 {
			io.WriteString(w, "done")
			return
		}
		http.Redirect(w, r, "/r/"+strconv.Itoa(n-1), http.StatusFound)
	}))
	defer srv.Close()

	tests := []struct {
		max  int
		hops int
		ok   bool
	}{
		{0, 5, true}, // default limit 5
		{0, 6, false},
		{0, 0, true},
		{2, 2, true},
		{2, 3, false},
		{12, 11, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("max%d_hops%d", tt.max, tt.hops), func(t *testing.T) {
			g, _ := newGuard(t, Options{BlockPrivate: true, AllowedHosts: []string{"127.0.0.1/32"}, MaxRedirects: tt.max, Resolver: newResolver()})
			_, body, err := get(t, g.Client(), srv.URL+"/r/"+strconv.Itoa(tt.hops))
			if tt.ok {
				if err != nil || string(body) != "done" {
					t.Fatalf("got %q, %v", body, err)
				}
				return
			}
			if !errors.Is(err, ErrTooManyRedirects) {
				t.Fatalf("error = %v, want ErrTooManyRedirects", err)
			}
			if errors.Is(err, ErrBlocked) {
				t.Errorf("a redirect loop is not an SSRF refusal: %v", err)
			}
		})
	}

	t.Run("negative returns the redirect", func(t *testing.T) {
		g, _ := newGuard(t, Options{BlockPrivate: true, AllowedHosts: []string{"127.0.0.1/32"}, MaxRedirects: -1, Resolver: newResolver()})
		resp, _, err := get(t, g.Client(), srv.URL+"/r/1")
		if err != nil || resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/r/0" {
			t.Fatalf("got %v, %v", resp, err)
		}
	})
}

// TestDNSRebinding: the name first resolves to a public address, then to
// loopback. The request must go to the first, checked address, and the
// dialer must never resolve again.
func TestDNSRebinding(t *testing.T) {
	srv := okServer(t)
	port := serverPort(t, srv)
	res := newResolver().set("rebind.test", "203.0.113.10").set("rebind.test", "127.0.0.1")
	g, log := newGuard(t, Options{BlockPrivate: true, Resolver: res})
	// 203.0.113.10 is a documentation address: the test server stands in for it.
	log.route["203.0.113.10:"+port] = srv.Listener.Addr().String()

	resp, body, err := get(t, g.Client(), "http://rebind.test:"+port+"/")
	if err != nil {
		t.Fatalf("first request: %v", err)
	}
	if resp.StatusCode != 200 || string(body) != "ok host=rebind.test:"+port {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if n := res.count("rebind.test"); n != 1 {
		t.Errorf("resolver calls after one request = %d, want 1", n)
	}
	if d := log.dialled(); len(d) != 1 || d[0] != "203.0.113.10:"+port {
		t.Errorf("dialled %v, want exactly the checked address 203.0.113.10:%s", d, port)
	}

	// The next request sees the rebound answer and is refused, even though a
	// kept-alive connection to the host exists.
	_, _, err = get(t, g.Client(), "http://rebind.test:"+port+"/")
	wantBlocked(t, err, "127.0.0.1", "loopback")
	if n := res.count("rebind.test"); n != 2 {
		t.Errorf("resolver calls after two requests = %d, want 2", n)
	}
	if d := log.dialled(); len(d) != 1 {
		t.Errorf("dialled %v after the refusal", d)
	}
}

// TestDialerOnlyDialsChecked: the dialer re-checks the pinned addresses, and
// never dials the host part of the address it is given.
func TestDialerOnlyDialsChecked(t *testing.T) {
	g, log := newGuard(t, Options{BlockPrivate: true, Resolver: newResolver()})
	_, err := g.dialPinned(context.Background(), "tcp", "public.example:80", []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("10.0.0.1")})
	wantBlocked(t, err, "10.0.0.1", "private network")
	_, err = g.dialPinned(context.Background(), "tcp", "public.example:80", nil)
	wantBlocked(t, err, "", "no checked address")
	if len(log.dialled()) != 0 {
		t.Errorf("dialled %v", log.dialled())
	}

	// Several checked addresses are tried in order; the host name is not dialled.
	srv := okServer(t)
	port := serverPort(t, srv)
	log.route["198.51.100.2:"+port] = srv.Listener.Addr().String()
	log.route["198.51.100.1:"+port] = "127.0.0.1:1" // refused: nothing listens there
	conn, err := g.dialPinned(context.Background(), "tcp", "two.example:"+port,
		[]netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("::ffff:198.51.100.2")})
	if err != nil {
		t.Fatalf("dialPinned: %v", err)
	}
	conn.Close()
	if d := log.dialled(); len(d) != 2 || d[0] != "198.51.100.1:"+port || d[1] != "198.51.100.2:"+port {
		t.Errorf("dialled %v", d)
	}
}

// TestTLSVerifiesHostName: the connection is pinned to the address, but TLS
// sends and verifies the URL's host name.
func TestTLSVerifiesHostName(t *testing.T) {
	var sni sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sni.Store(r.TLS.ServerName, true)
		io.WriteString(w, "tls ok")
	}))
	srv.StartTLS()
	defer srv.Close()
	port := serverPort(t, srv)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate()) // valid for example.com, *.example.com, 127.0.0.1, ::1

	res := newResolver().set("example.com", "127.0.0.1").set("api.example.com", "127.0.0.1").set("wrong.test", "127.0.0.1")
	g, log := newGuard(t, Options{BlockPrivate: true, AllowedHosts: []string{"127.0.0.1/32"}, Resolver: res})
	g.tlsConfig = &tls.Config{RootCAs: pool}

	for _, host := range []string{"example.com", "api.example.com"} {
		_, body, err := get(t, g.Client(), "https://"+host+":"+port+"/")
		if err != nil || string(body) != "tls ok" {
			t.Fatalf("%s: got %q, %v", host, body, err)
		}
		if _, ok := sni.Load(host); !ok {
			t.Errorf("the server did not see SNI %q", host)
		}
	}
	_, _, err := get(t, g.Client(), "https://wrong.test:"+port+"/")
	var hostErr x509.HostnameError
	if !errors.As(err, &hostErr) || errors.Is(err, ErrBlocked) {
		t.Errorf("wrong.test: error = %v, want a certificate host name error", err)
	}
	for _, d := range log.dialled() {
		if d != "127.0.0.1:"+port {
			t.Errorf("dialled %s, want only the pinned 127.0.0.1:%s", d, port)
		}
	}
}

func TestBlockPrivateFalse(t *testing.T) {
	srv := okServer(t)
	res := newResolver().set("internal.example", "10.0.0.5")
	g, _ := newGuard(t, Options{BlockPrivate: false, Resolver: res})
	for _, raw := range []string{"http://10.0.0.1/", "http://169.254.169.254/", "http://[::1]/", "http://internal.example/", "http://0x7f.1/"} {
		if err := g.CheckURL(context.Background(), raw); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil with BlockPrivate=false", raw, err)
		}
	}
	resp, body, err := get(t, g.Client(), srv.URL)
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(body), "ok") {
		t.Fatalf("GET loopback with BlockPrivate=false: %v %q", err, body)
	}
	// The scheme rule still holds.
	if err := g.CheckURL(context.Background(), "file:///etc/passwd"); !errors.Is(err, ErrBlocked) {
		t.Errorf("file:// with BlockPrivate=false: %v", err)
	}
}

func TestNew(t *testing.T) {
	for _, bad := range []string{"", "   ", "10.0.0.0/33", "example.com/24", "bad host", "host:80", "http://x.example", "a..b", "under/score", "ex ample.com", "-", "é.example"} {
		if _, err := New(Options{AllowedHosts: []string{"ok.example", bad}}); err == nil {
			t.Errorf("New accepted AllowedHosts entry %q", bad)
		}
	}
	for _, good := range []string{"127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8", "10.0.0.1", "::1", "Example.COM", "example.com.", "fake_svc", "localhost"} {
		if _, err := New(Options{AllowedHosts: []string{good}}); err != nil {
			t.Errorf("New rejected AllowedHosts entry %q: %v", good, err)
		}
	}
	g, err := New(Options{AllowedHosts: []string{"10.1.2.3/8"}, BlockPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	if g.resolver != net.DefaultResolver {
		t.Errorf("nil Resolver should mean net.DefaultResolver, got %T", g.resolver)
	}
	if g.maxRedirects != DefaultMaxRedirects {
		t.Errorf("maxRedirects = %d, want %d", g.maxRedirects, DefaultMaxRedirects)
	}
	// A CIDR with host bits set is masked.
	if err := g.CheckURL(context.Background(), "http://10.200.0.1/"); err != nil {
		t.Errorf("10.200.0.1 under 10.1.2.3/8: %v", err)
	}
	c := g.Client()
	if c.Transport == nil || c.CheckRedirect == nil || c.Timeout != 0 {
		t.Errorf("client = %+v", c)
	}
	g2, _ := New(Options{Timeout: 3 * time.Second})
	if g2.Client().Timeout != 3*time.Second {
		t.Errorf("Timeout not applied")
	}
	if g2.Client() == g2.Client() {
		t.Errorf("Client should return a fresh client each time")
	}
}

func TestTransportCache(t *testing.T) {
	g, _ := newGuard(t, Options{Resolver: newResolver()})
	a := []netip.Addr{netip.MustParseAddr("198.51.100.1")}
	first := g.rt.transport(a)
	if g.rt.transport(a) != first {
		t.Fatal("the same pinned address should reuse its transport")
	}
	for i := range maxPinnedTransports + 10 {
		g.rt.transport([]netip.Addr{netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)})})
		g.rt.transport(a) // keep the first one recently used
	}
	if n := len(g.rt.pins); n != maxPinnedTransports {
		t.Errorf("cache holds %d transports, want %d", n, maxPinnedTransports)
	}
	if g.rt.transport(a) != first {
		t.Error("the recently used transport was evicted")
	}
}

func TestConcurrentRequests(t *testing.T) {
	srv := okServer(t)
	res := newResolver().set("a.test", "127.0.0.1").set("b.test", "10.0.0.1")
	g, _ := newGuard(t, Options{BlockPrivate: true, AllowedHosts: []string{"127.0.0.1/32"}, Resolver: res})
	port := serverPort(t, srv)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, _, err := get(t, g.Client(), fmt.Sprintf("http://a.test:%s/%d", port, i)); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			if _, _, err := get(t, g.Client(), "http://b.test:"+port+"/"); !errors.Is(err, ErrBlocked) {
				errs <- fmt.Errorf("b.test: %v", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestReadLimited(t *testing.T) {
	tests := []struct {
		size, limit int64
		tooLarge    bool
	}{
		{0, 10, false},
		{10, 10, false},
		{11, 10, true},
		{MaxResponseBytes, MaxResponseBytes, false},
		{MaxResponseBytes + 1, MaxResponseBytes, true},
		{MaxResponseBytes + 1, 0, true}, // 0 means the default cap
		{MaxResponseBytes, -1, false},
	}
	for _, tt := range tests {
		data, err := ReadLimited(strings.NewReader(strings.Repeat("x", int(tt.size))), tt.limit)
		if !tt.tooLarge {
			if err != nil || int64(len(data)) != tt.size {
				t.Errorf("size %d limit %d: got %d bytes, %v", tt.size, tt.limit, len(data), err)
			}
			continue
		}
		var tl *TooLargeError
		if !errors.As(err, &tl) || tl.Code != "response-too-large" || data != nil {
			t.Errorf("size %d limit %d: got %d bytes, %v; want *TooLargeError", tt.size, tt.limit, len(data), err)
		}
	}
	// Read errors pass through with what was read.
	boom := errors.New("boom")
	data, err := ReadLimited(io.MultiReader(strings.NewReader("abc"), errReader{boom}), 10)
	if !errors.Is(err, boom) || string(data) != "abc" {
		t.Errorf("got %q, %v", data, err)
	}
	// An endless body is cut off after limit+1 bytes.
	if _, err := ReadLimited(endless{}, 1024); err == nil {
		t.Error("endless body accepted")
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'z'
	}
	return len(p), nil
}

func TestReadLimitedResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, MaxResponseBytes+1))
	}))
	defer srv.Close()
	g, _ := newGuard(t, Options{BlockPrivate: true, AllowedHosts: []string{"127.0.0.1/32"}, Resolver: newResolver()})
	_, _, err := get(t, g.Client(), srv.URL)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Limit != MaxResponseBytes {
		t.Fatalf("error = %v, want *TooLargeError", err)
	}
}
