package netguard

import (
	"net/netip"
	"testing"
)

func TestBlockReason(t *testing.T) {
	tests := []struct {
		ip     string
		reason string // "" = allowed
	}{
		// IPv4 blocks and their edges.
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "this network"},
		{"1.0.0.0", ""},
		{"9.255.255.255", ""},
		{"10.0.0.0", "private network"},
		{"10.255.255.255", "private network"},
		{"11.0.0.0", ""},
		{"100.63.255.255", ""},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.255", "carrier-grade NAT"},
		{"100.128.0.0", ""},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"128.0.0.1", ""},
		{"169.254.169.254", "link-local, cloud metadata"},
		{"169.254.0.1", "link-local"},
		{"169.253.255.255", ""},
		{"169.255.0.0", ""},
		{"172.15.255.255", ""},
		{"172.16.0.1", "private network"},
		{"172.31.255.255", "private network"},
		{"172.32.0.0", ""},
		{"192.167.255.255", ""},
		{"192.168.1.1", "private network"},
		{"192.169.0.0", ""},
		{"198.18.0.1", "benchmarking network"},
		{"198.20.0.0", ""},
		{"223.255.255.255", ""},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "broadcast"},
		{"8.8.8.8", ""},
		{"203.0.113.7", ""},
		// IPv6.
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"fe80::1", "link-local"},
		{"febf:ffff::1", "link-local"},
		{"fec0::1", "site-local"},
		{"feff::1", "site-local"},
		{"fc00::1", "unique local (ULA)"},
		{"fdff:ffff::1", "unique local (ULA)"},
		{"fe00::1", ""},
		{"ff02::1", "multicast"},
		{"64:ff9b:1::1", "local-use NAT64"},
		{"100::1", "discard-only"},
		{"2001:db8::1", ""},
		{"2606:4700::1111", ""},
		// IPv4 inside IPv6.
		{"::ffff:127.0.0.1", "loopback, IPv4-mapped"},
		{"::ffff:10.0.0.1", "private network, IPv4-mapped"},
		{"::ffff:169.254.169.254", "link-local, cloud metadata, IPv4-mapped"},
		{"::ffff:8.8.8.8", ""},
		{"::127.0.0.1", "loopback, IPv4-compatible"},
		{"::10.0.0.1", "private network, IPv4-compatible"},
		{"::8.8.8.8", ""},
		{"::ffff:0:192.168.0.1", "private network, IPv4-translated"},
		{"64:ff9b::10.0.0.1", "private network, NAT64"},
		{"64:ff9b::7f00:1", "loopback, NAT64"},
		{"64:ff9b::8.8.8.8", ""},
		{"2002:a9fe:a9fe::1", "link-local, cloud metadata, 6to4"},
		{"2002:0808:0808::1", ""},
		{"2001:0:4136:e378:8000:63bf:f5ff:fffe", "private network, Teredo"}, // client 10.0.0.1
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", ""},                        // client 192.0.2.45
		// Zones are ignored.
		{"fe80::1%eth0", "link-local"},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got := blockReason(ip); got != tt.reason {
			t.Errorf("blockReason(%s) = %q, want %q", tt.ip, got, tt.reason)
		}
	}
	if got := blockReason(netip.Addr{}); got == "" {
		t.Error("the zero Addr must be refused")
	}
}

func TestParseHostIP(t *testing.T) {
	tests := []struct {
		host string
		want string // "" = not an IP literal
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.0.1.", "127.0.0.1"},
		{"::1", "::1"},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F000001", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0x7f.0x0.0x0.0x1", "127.0.0.1"},
		{"10.0x10203", "10.1.2.3"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"169.16689662", "169.254.169.254"},
		{"4294967296", ""}, // overflows 32 bits
		{"256.1", ""},      // a non-last part above 255
		{"1.2.3.256", ""},  // the last part of a.b.c.d is one byte
		{"1.2.65536", ""},  // the last part of a.b.c is two bytes
		{"1.2.3.4.5", ""},
		{"08.1", ""}, // 8 is not an octal digit
		{"1..2", ""},
		{"", ""},
		{"example.com", ""},
		{"0xg", ""},
		{"+1", ""},
		{"1_000", ""},
		{"localhost", ""},
	}
	for _, tt := range tests {
		ip, ok := parseHostIP(tt.host)
		switch {
		case tt.want == "" && ok:
			t.Errorf("parseHostIP(%q) = %s, want not an IP", tt.host, ip)
		case tt.want != "" && !ok:
			t.Errorf("parseHostIP(%q) is not an IP, want %s", tt.host, tt.want)
		case tt.want != "" && ip.String() != tt.want:
			t.Errorf("parseHostIP(%q) = %s, want %s", tt.host, ip, tt.want)
		}
	}
}
