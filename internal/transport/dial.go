package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// ErrNotLoopback is why a loopback-only dialer refused an address.
var ErrNotLoopback = errors.New("plain http is allowed only to a loopback address")

// Dialer returns the dialer of an outbound client mcpgate pushes to (an
// alert webhook, an OTLP collector). With loopbackOnly (plain http, which
// the config allows only to a loopback host name) every address actually
// dialled must be loopback: a name could still resolve elsewhere.
func Dialer(timeout time.Duration, loopbackOnly bool) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	if loopbackOnly {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !ap.Addr().Unmap().IsLoopback() {
				return fmt.Errorf("dial %s: %w", address, ErrNotLoopback)
			}
			return nil
		}
	}
	return d
}
