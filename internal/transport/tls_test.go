package transport

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
)

// ioTimeout bounds every network wait in these tests, so a server that never
// answers fails the test instead of hanging it. Nothing asserts on time.
const ioTimeout = 10 * time.Second

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// issue makes a leaf certificate signed by ca: a server certificate for
// localhost and 127.0.0.1, or a client certificate. rsaKey picks the key type
// (which decides the ECDHE_RSA or ECDHE_ECDSA suites).
func (ca *testCA) issue(t *testing.T, serial int64, client, rsaKey bool) (certPEM, keyPEM []byte) {
	t.Helper()
	var key crypto.Signer
	var err error
	if rsaKey {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "leaf"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if rsaKey {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// serverFiles writes a server certificate and key issued by ca into dir.
func serverFiles(t *testing.T, dir string, ca *testCA, serial int64, rsaKey bool) config.TLS {
	t.Helper()
	c, k := ca.issue(t, serial, false, rsaKey)
	tc := config.TLS{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	writeFile(t, tc.Cert, c)
	writeFile(t, tc.Key, k)
	return tc
}

// logBuffer collects log output written from the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveTLS accepts TLS connections on loopback with cfg until the test ends;
// after a completed handshake it sends one byte, so a client that reads it
// knows the server accepted the handshake (in TLS 1.3 the client finishes
// before the server has checked the client's certificate).
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, cfg)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		tln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(ioTimeout))
				if err := c.(*tls.Conn).Handshake(); err == nil {
					c.Write([]byte{1})
				}
			})
		}
	})
	return ln.Addr().String()
}

// handshake connects with cfg and reads the server's one byte.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: ioTimeout}, Config: cfg}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	tc := c.(*tls.Conn)
	if _, err := io.ReadFull(tc, make([]byte, 1)); err != nil {
		return tc.ConnectionState(), err
	}
	return tc.ConnectionState(), nil
}

func newServer(t *testing.T, c config.TLS, logs io.Writer) *ServerTLS {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	st, err := newServerTLS(c, nil, slog.New(slog.NewTextHandler(logs, nil)), 0)
	if err != nil {
		t.Fatalf("newServerTLS: %v", err)
	}
	return st
}

// permissive is a server accepting every version and suite crypto/tls
// implements. The refusal tests first connect to it with the same client, so
// they prove that mcpgate's settings refuse the client, not that the client
// could not have connected anywhere.
func permissive(t *testing.T, files config.TLS) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	var all []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		all = append(all, s.ID)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS10, CipherSuites: all}
}

func TestTLSVersionsAndSuites(t *testing.T) {
	ca := newCA(t, "server CA")
	ecdsaFiles := serverFiles(t, t.TempDir(), ca, 10, false)
	rsaFiles := serverFiles(t, t.TempDir(), ca, 11, true)
	ecdsaAddr := serveTLS(t, newServer(t, ecdsaFiles, nil).Config)
	rsaAddr := serveTLS(t, newServer(t, rsaFiles, nil).Config)
	control := map[string]string{
		ecdsaAddr: serveTLS(t, permissive(t, ecdsaFiles)),
		rsaAddr:   serveTLS(t, permissive(t, rsaFiles)),
	}
	// refused checks that cfg cannot connect to mcpgate's settings; the
	// permissive server shows whether the client could connect at all.
	refused := func(t *testing.T, addr string, cfg *tls.Config, what string) {
		t.Helper()
		st, err := handshake(addr, cfg)
		if err == nil {
			t.Fatalf("%s: connected (negotiated %s %s)", what, tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
		}
		if _, cerr := handshake(control[addr], cfg); cerr != nil {
			// Still refused, but crypto/tls itself no longer speaks this.
			t.Logf("%s: refused (%v); the client cannot connect to a permissive server either (%v)", what, err, cerr)
		}
	}
	client := func(minV, maxV uint16, suites ...uint16) *tls.Config {
		return &tls.Config{RootCAs: ca.pool, ServerName: "localhost", MinVersion: minV, MaxVersion: maxV, CipherSuites: suites}
	}

	t.Run("default client negotiates TLS 1.3", func(t *testing.T) {
		for _, addr := range []string{ecdsaAddr, rsaAddr} {
			st, err := handshake(addr, &tls.Config{RootCAs: ca.pool, ServerName: "localhost"})
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if st.Version != tls.VersionTLS13 {
				t.Fatalf("negotiated %s, want TLS 1.3", tls.VersionName(st.Version))
			}
		}
	})
	t.Run("TLS 1.2 with a modern suite", func(t *testing.T) {
		for _, tc := range []struct {
			addr  string
			suite uint16
		}{
			{ecdsaAddr, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
			{ecdsaAddr, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
			{ecdsaAddr, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
			{rsaAddr, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
			{rsaAddr, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384},
			{rsaAddr, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256},
		} {
			st, err := handshake(tc.addr, client(tls.VersionTLS12, tls.VersionTLS12, tc.suite))
			if err != nil {
				t.Fatalf("%s: %v", tls.CipherSuiteName(tc.suite), err)
			}
			if st.Version != tls.VersionTLS12 || st.CipherSuite != tc.suite {
				t.Fatalf("negotiated %s %s, want TLS 1.2 %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), tls.CipherSuiteName(tc.suite))
			}
		}
	})
	t.Run("TLS 1.0 and 1.1 refused", func(t *testing.T) {
		for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
			for _, addr := range []string{ecdsaAddr, rsaAddr} {
				refused(t, addr, client(v, v), tls.VersionName(v)+" client")
			}
		}
	})
	t.Run("weak TLS 1.2 suites refused", func(t *testing.T) {
		for _, tc := range []struct {
			addr  string
			suite uint16
		}{
			{rsaAddr, tls.TLS_RSA_WITH_AES_128_CBC_SHA},
			{rsaAddr, tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, // AEAD, but no forward secrecy
			{rsaAddr, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA},
			{rsaAddr, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA},
			{ecdsaAddr, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
			{ecdsaAddr, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256},
			{ecdsaAddr, tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA},
		} {
			refused(t, tc.addr, client(tls.VersionTLS12, tls.VersionTLS12, tc.suite), "client offering only "+tls.CipherSuiteName(tc.suite))
		}
	})
}

func TestTLSReloadsReplacedCertificate(t *testing.T) {
	ca := newCA(t, "server CA")
	dir := t.TempDir()
	files := serverFiles(t, dir, ca, 100, false)
	logs := &logBuffer{}
	addr := serveTLS(t, newServer(t, files, logs).Config)
	serial := func() int64 {
		t.Helper()
		st, err := handshake(addr, &tls.Config{RootCAs: ca.pool, ServerName: "localhost"})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return st.PeerCertificates[0].SerialNumber.Int64()
	}
	// bump gives both files a modification time no earlier write can have,
	// so the change is seen however coarse the file system's clock is.
	bump := func(at time.Time) {
		t.Helper()
		for _, p := range []string{files.Cert, files.Key} {
			if err := os.Chtimes(p, at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := serial(); got != 100 {
		t.Fatalf("serial %d, want 100", got)
	}

	serverFiles(t, dir, ca, 200, false)
	bump(time.Now().Add(time.Hour))
	if got := serial(); got != 200 {
		t.Fatalf("after replacing the files: serial %d, want 200", got)
	}

	// A broken pair (a key that does not match) keeps the old certificate
	// in service, and says so in the log.
	c300, _ := ca.issue(t, 300, false, false)
	writeFile(t, files.Cert, c300)
	bump(time.Now().Add(2 * time.Hour))
	if got := serial(); got != 200 {
		t.Fatalf("after a mismatched pair: serial %d, want the previous 200", got)
	}
	if !strings.Contains(logs.String(), "TLS certificate reload failed") {
		t.Fatalf("the failed reload was not logged:\n%s", logs.String())
	}

	// Writing the matching key completes the renewal.
	serverFiles(t, dir, ca, 400, false)
	bump(time.Now().Add(3 * time.Hour))
	if got := serial(); got != 400 {
		t.Fatalf("after a complete pair: serial %d, want 400", got)
	}
}

func TestTLSReloadIsThrottled(t *testing.T) {
	ca := newCA(t, "server CA")
	dir := t.TempDir()
	files := serverFiles(t, dir, ca, 1, false)
	r := &certReloader{certPath: files.Cert, keyPath: files.Key, interval: time.Hour, logger: slog.New(slog.DiscardHandler)}
	if err := r.load(); err != nil {
		t.Fatal(err)
	}
	serverFiles(t, dir, ca, 2, false)
	future := time.Now().Add(time.Hour)
	os.Chtimes(files.Cert, future, future)
	cert, _ := r.getCertificate(nil)
	if cert.Leaf.SerialNumber.Int64() != 1 {
		t.Fatal("the files were looked at again within the check interval")
	}
	r.mu.Lock()
	r.checked = time.Time{} // the interval has passed
	r.mu.Unlock()
	if cert, _ := r.getCertificate(nil); cert.Leaf.SerialNumber.Int64() != 2 {
		t.Fatal("the replaced files were not loaded once the interval had passed")
	}
}

func TestTLSClientCertificates(t *testing.T) {
	serverCA := newCA(t, "server CA")
	clientCA := newCA(t, "client CA")
	otherCA := newCA(t, "other CA")
	dir := t.TempDir()
	files := serverFiles(t, dir, serverCA, 1, false)
	files.ClientCA = filepath.Join(dir, "client-ca.pem")
	writeFile(t, files.ClientCA, clientCA.pem())
	addr := serveTLS(t, newServer(t, files, nil).Config)

	clientCert := func(ca *testCA) []tls.Certificate {
		c, k := ca.issue(t, 7, true, false)
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{pair}
	}
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		maxV  uint16
		ok    bool
	}{
		{"no client certificate", nil, 0, false},
		{"no client certificate, TLS 1.2", nil, tls.VersionTLS12, false},
		{"certificate from the client CA", clientCert(clientCA), 0, true},
		{"certificate from the client CA, TLS 1.2", clientCert(clientCA), tls.VersionTLS12, true},
		{"certificate from another CA", clientCert(otherCA), 0, false},
		{"certificate from another CA, TLS 1.2", clientCert(otherCA), tls.VersionTLS12, false},
		{"server's own certificate", clientCert(serverCA), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := handshake(addr, &tls.Config{RootCAs: serverCA.pool, ServerName: "localhost", Certificates: tc.certs, MaxVersion: tc.maxV})
			if (err == nil) != tc.ok {
				t.Fatalf("handshake err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestTLSSelfSigned(t *testing.T) {
	st, err := NewServerTLS(config.TLS{SelfSigned: true}, []string{"mcp.example.com:8443", "[::1]"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	leaf := st.Config.Certificates[0].Leaf
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Fatalf("key is %T, want ECDSA", leaf.PublicKey)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 29*24*time.Hour || life > 31*24*time.Hour {
		t.Fatalf("valid for %v, want about 30 days", life)
	}
	if err := leaf.VerifyHostname("mcp.example.com"); err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("::1"); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, st.Config)

	// A client that pins the printed fingerprint connects, with TLS 1.3.
	var seen string
	pinned := &tls.Config{
		InsecureSkipVerify: true, // verified by the pin below instead
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			sum := sha256.Sum256(raw[0])
			seen = colonHex(sum[:])
			if seen != st.Fingerprint {
				return errors.New("fingerprint mismatch")
			}
			return nil
		},
	}
	cs, err := handshake(addr, pinned)
	if err != nil {
		t.Fatalf("pinned handshake: %v (fingerprint %s, printed %s)", err, seen, st.Fingerprint)
	}
	if cs.Version != tls.VersionTLS13 {
		t.Fatalf("negotiated %s", tls.VersionName(cs.Version))
	}
	if len(st.Fingerprint) != 32*3-1 {
		t.Fatalf("fingerprint %q is not 32 colon-separated bytes", st.Fingerprint)
	}

	// Loopback names by default.
	st, err = NewServerTLS(config.TLS{SelfSigned: true}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		if err := st.Config.Certificates[0].Leaf.VerifyHostname(h); err != nil {
			t.Fatalf("default self-signed certificate: %v", err)
		}
	}
}

func TestTLSLoadErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	writeFile(t, bad, []byte("not pem"))
	ca := newCA(t, "CA")
	good := serverFiles(t, dir, ca, 1, false)
	for _, tc := range []struct {
		c    config.TLS
		want string
	}{
		{config.TLS{Cert: bad, Key: bad}, "listen.tls.cert"},
		{config.TLS{Cert: filepath.Join(dir, "missing.pem"), Key: good.Key}, "listen.tls.cert"},
		{config.TLS{Cert: good.Cert, Key: good.Key, ClientCA: bad}, "listen.tls.client_ca"},
	} {
		_, err := NewServerTLS(tc.c, nil, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewServerTLS(%+v) = %v, want an error naming %s", tc.c, err, tc.want)
		}
	}
}
