package netguard

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strings"
)

// ErrBlocked is wrapped by every refusal; errors.Is(err, ErrBlocked) holds
// even through the *url.Error that http.Client.Do returns. Its text is the
// error code of PRODUCT §6.3.
var ErrBlocked = errors.New("ssrf-blocked")

// ErrTooManyRedirects is returned (wrapped) when a request is redirected more
// often than Options.MaxRedirects allows. It is not an SSRF refusal, so it does
// not wrap ErrBlocked.
var ErrTooManyRedirects = errors.New("netguard: too many redirects")

// BlockedError is one refusal: the target host, the refused address (invalid
// when the refusal is not about an address, such as a scheme), and why.
type BlockedError struct {
	Host   string
	IP     netip.Addr
	Reason string
}

// Error reads like `ssrf-blocked: 10.0.0.5 (private network) for host "internal.example"`.
func (e *BlockedError) Error() string {
	var b strings.Builder
	b.WriteString(ErrBlocked.Error())
	b.WriteString(": ")
	if e.IP.IsValid() {
		fmt.Fprintf(&b, "%s (%s)", e.IP, e.Reason)
	} else {
		b.WriteString(e.Reason)
	}
	if e.Host != "" {
		fmt.Fprintf(&b, " for host %q", e.Host)
	}
	return b.String()
}

// Unwrap returns ErrBlocked.
func (e *BlockedError) Unwrap() error { return ErrBlocked }

// MaxResponseBytes is the cap on outbound response bodies (PRODUCT §6.3).
const MaxResponseBytes = 1 << 20

// CodeResponseTooLarge is the Code of every TooLargeError.
const CodeResponseTooLarge = "response-too-large"

// TooLargeError reports a body longer than the limit given to ReadLimited.
type TooLargeError struct {
	Code  string // always CodeResponseTooLarge
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s: body exceeds %d bytes", e.Code, e.Limit)
}

// ReadLimited reads at most limit bytes of r. A body longer than limit gives
// (nil, *TooLargeError); a read error gives the bytes read so far and that
// error. limit <= 0 means MaxResponseBytes, so a zero value never lifts the cap.
func ReadLimited(r io.Reader, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = MaxResponseBytes
	}
	n := limit
	if n < math.MaxInt64 {
		n++ // one byte more tells "exactly limit" from "too long"
	}
	data, err := io.ReadAll(io.LimitReader(r, n))
	if int64(len(data)) > limit {
		return nil, &TooLargeError{Code: CodeResponseTooLarge, Limit: limit}
	}
	return data, err
}
