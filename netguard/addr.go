package netguard

import (
	"net/netip"
	"strconv"
	"strings"
)

// addrRange is one refused address block and the reason reported for it.
type addrRange struct {
	prefix netip.Prefix
	reason string
}

// blocked4 lists the refused IPv4 blocks. The first match wins, so the more
// specific entries come first. Documentation ranges (192.0.2/24, 198.51.100/24,
// 203.0.113/24) are deliberately not listed: they are not reachable anyway and
// tests use them as stand-ins for public addresses.
var blocked4 = []addrRange{
	{netip.MustParsePrefix("0.0.0.0/32"), "unspecified"},
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.169.254/32"), "link-local, cloud metadata"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private network"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private network"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking network"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
}

// blocked6 lists the refused IPv6 blocks (IPv4-embedding forms are handled by
// embedded6 and by Unmap).
var blocked6 = []addrRange{
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("fc00::/7"), "unique local (ULA)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
}

// embeddedForm is an IPv6 block that carries an IPv4 address; the address is
// refused when the IPv4 address it embeds would be.
type embeddedForm struct {
	prefix  netip.Prefix
	name    string
	extract func(b [16]byte) netip.Addr
}

var embedded6 = []embeddedForm{
	// ::a.b.c.d, deprecated IPv4-compatible form (:: and ::1 are matched before).
	{netip.MustParsePrefix("::/96"), "IPv4-compatible", last32},
	// ::ffff:0:a.b.c.d, SIIT IPv4-translated form.
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated", last32},
	// 64:ff9b::a.b.c.d, well-known NAT64 prefix (RFC 6052).
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64", last32},
	// 2002:AABB:CCDD::/48, 6to4 (RFC 3056).
	{netip.MustParsePrefix("2002::/16"), "6to4", func(b [16]byte) netip.Addr {
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
	}},
	// 2001:0::/32, Teredo: the client address is the last 32 bits inverted (RFC 4380).
	{netip.MustParsePrefix("2001::/32"), "Teredo", func(b [16]byte) netip.Addr {
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
	}},
}

func last32(b [16]byte) netip.Addr { return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}) }

// blockReason returns why ip must not be dialled, or "" when it is a public
// address. It ignores any IPv6 zone.
func blockReason(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid address"
	}
	ip = ip.WithZone("")
	if ip.Is4In6() {
		if r := blockReason4(ip.Unmap()); r != "" {
			return r + ", IPv4-mapped"
		}
		return ""
	}
	if ip.Is4() {
		return blockReason4(ip)
	}
	for _, r := range blocked6 {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	for _, e := range embedded6 {
		if e.prefix.Contains(ip) {
			if r := blockReason4(e.extract(ip.As16())); r != "" {
				return r + ", " + e.name
			}
			return ""
		}
	}
	return ""
}

func blockReason4(ip netip.Addr) string {
	for _, r := range blocked4 {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	return ""
}

// parseHostIP reports whether host (a URL host name without brackets or port)
// is an IP literal. Besides the canonical forms it accepts the legacy
// inet_aton spellings that C resolvers and browsers turn into addresses
// (2130706433, 0x7f.1, 0177.0.0.1, 127.1), so those are checked as the address
// they denote instead of being handed to a resolver. One trailing dot is
// ignored ("127.0.0.1.").
func parseHostIP(host string) (netip.Addr, bool) {
	h := strings.TrimSuffix(host, ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip, true
	}
	return parseInetAton(h)
}

// parseInetAton parses the BSD inet_aton forms a, a.b, a.b.c and a.b.c.d, where
// each part is decimal, octal (leading 0) or hexadecimal (leading 0x), and the
// last part fills all remaining bytes.
func parseInetAton(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var n uint64
	for i, p := range parts {
		v, ok := parseAtonPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if v > 0xff {
				return netip.Addr{}, false
			}
			n = n<<8 | v
			continue
		}
		bits := 8 * uint(4-i) // the last part fills the remaining bytes
		if v >= 1<<bits {
			return netip.Addr{}, false
		}
		n = n<<bits | v
	}
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func parseAtonPart(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
		if p == "" { // "0x" alone is 0, as in browsers
			return 0, true
		}
	case len(p) >= 2 && p[0] == '0':
		base, p = 8, p[1:]
	}
	v, err := strconv.ParseUint(p, base, 32)
	if err != nil {
		return 0, false
	}
	return v, true
}
