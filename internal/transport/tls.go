package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
)

// reloadCheckInterval bounds how often the certificate files are stat'ed: at
// most once per second, so a handshake flood costs no file system work.
const reloadCheckInterval = time.Second

// selfSignedValidity is how long a self-signed certificate is valid. It is
// made at every start, so a short life costs nothing.
const selfSignedValidity = 30 * 24 * time.Hour

// tls12Suites are the only TLS 1.2 suites offered: forward-secret key
// exchange (ECDHE) with an AEAD cipher. TLS 1.3 suites are all of that kind
// and are not configurable in crypto/tls.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerTLS is the listener's TLS configuration.
type ServerTLS struct {
	// Config is ready for tls.NewListener.
	Config *tls.Config
	// Fingerprint is the SHA-256 of a self-signed certificate's DER, as
	// colon-separated hex (the form `openssl x509 -fingerprint -sha256`
	// prints); empty when the certificate comes from files.
	Fingerprint string
}

// NewServerTLS builds the TLS configuration for the listener. hosts are the
// names a self-signed certificate is made for (host or host:port; empty means
// the loopback names).
func NewServerTLS(c config.TLS, hosts []string, logger *slog.Logger) (*ServerTLS, error) {
	return newServerTLS(c, hosts, logger, reloadCheckInterval)
}

func newServerTLS(c config.TLS, hosts []string, logger *slog.Logger, interval time.Duration) (*ServerTLS, error) {
	st := &ServerTLS{Config: &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tls12Suites,
		// HTTP/1.1 only: the same code path, limits and timeouts as the
		// plaintext listener, which is what the hardening tests exercise.
		NextProtos: []string{"http/1.1"},
	}}
	switch {
	case c.SelfSigned:
		cert, err := selfSigned(hosts, time.Now())
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(cert.Leaf.Raw)
		st.Fingerprint = colonHex(sum[:])
		st.Config.Certificates = []tls.Certificate{*cert}
	default:
		r := &certReloader{certPath: c.Cert, keyPath: c.Key, interval: interval, logger: logger}
		if err := r.load(); err != nil {
			return nil, err
		}
		st.Config.GetCertificate = r.getCertificate
	}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("read listen.tls.client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read listen.tls.client_ca: no PEM certificate in %s", c.ClientCA)
		}
		st.Config.ClientCAs = pool
		st.Config.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return st, nil
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

// fileStamp is what tells that a file changed: replacing a certificate
// changes its modification time, and usually its size.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// certReloader serves a certificate and key from disk and loads them again
// when either file changes, so a renewed certificate is served without a
// restart. A pair that fails to load (a half-written renewal, a key that does
// not match) is logged and the previous certificate stays in service.
type certReloader struct {
	certPath, keyPath string
	interval          time.Duration
	logger            *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamps  [2]fileStamp // of the files last looked at, loaded or not
	checked time.Time
}

// load reads the pair; it is the first load, whose failure is fatal.
func (r *certReloader) load() error {
	stamps, err := r.stat()
	if err != nil {
		return err
	}
	cert, err := r.read()
	if err != nil {
		return err
	}
	r.cert, r.stamps, r.checked = cert, stamps, time.Now()
	return nil
}

func (r *certReloader) stat() ([2]fileStamp, error) {
	var s [2]fileStamp
	var err error
	if s[0], err = stampOf(r.certPath); err != nil {
		return s, fmt.Errorf("stat listen.tls.cert: %w", err)
	}
	if s[1], err = stampOf(r.keyPath); err != nil {
		return s, fmt.Errorf("stat listen.tls.key: %w", err)
	}
	return s, nil
}

func (r *certReloader) read() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.certPath, r.keyPath)
	if err != nil {
		return nil, fmt.Errorf("load listen.tls.cert and listen.tls.key: %w", err)
	}
	return &cert, nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.interval {
		r.checked = now
		r.reloadIfChanged()
	}
	return r.cert, nil
}

// reloadIfChanged loads the pair again if either file changed since last
// looked at. The new stamps are kept even when the load fails, so a broken
// pair is logged once, and tried again only when a file changes again.
func (r *certReloader) reloadIfChanged() {
	stamps, err := r.stat()
	if err != nil {
		if stamps != r.stamps {
			r.stamps = stamps
			r.logger.Warn("TLS certificate reload failed; still serving the previous certificate", "error", err)
		}
		return
	}
	if stamps == r.stamps {
		return
	}
	r.stamps = stamps
	cert, err := r.read()
	if err != nil {
		r.logger.Warn("TLS certificate reload failed; still serving the previous certificate", "error", err)
		return
	}
	r.cert = cert
	r.logger.Info("TLS certificate reloaded", "cert", r.certPath)
}

// selfSigned makes an ECDSA P-256 certificate for hosts, for local use: no
// CA can vouch for it, so clients trust it by its printed fingerprint.
func selfSigned(hosts []string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate self-signed key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate self-signed serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "mcpgate self-signed"},
		// A few minutes back, so a client whose clock is slightly behind
		// still accepts it.
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if len(hosts) == 0 {
		hosts = loopbackHosts
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		h = hostOnly(h)
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip, err := netip.ParseAddr(h); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse self-signed certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// hostOnly strips a port and IPv6 brackets: allowed_hosts entries may be
// host or host:port, a certificate names hosts.
func hostOnly(h string) string {
	if name, _, err := net.SplitHostPort(h); err == nil {
		h = name
	}
	return normalizeHost(h)
}
