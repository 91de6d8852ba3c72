// Package testcert creates throwaway X.509 certificates for tests of Tern's
// TLS listeners and of brokers that use them: a certificate authority, a
// server certificate for localhost, and client certificates it signed.
//
// The keys are ECDSA P-256, generated per call, and live only in memory. Do
// not use them outside tests.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// ClientCommonName is the Subject Common Name of Certs.Client.
const ClientCommonName = "tern-test-client"

// ServerCommonName is the Subject Common Name of Certs.Server.
const ServerCommonName = "localhost"

// Certs is a certificate authority with a server and a client certificate it
// signed.
type Certs struct {
	// CA is the authority's certificate; CAPool holds only it.
	CA     *x509.Certificate
	CAPool *x509.CertPool
	// Server is valid for localhost, 127.0.0.1 and ::1.
	Server tls.Certificate
	// Client is a client certificate with Common Name ClientCommonName.
	Client tls.Certificate

	t     testing.TB
	caKey *ecdsa.PrivateKey
}

// New creates a fresh authority, server certificate and client certificate,
// failing t on error. Each call creates a new, unrelated authority, so the
// certificates of one Certs are untrusted by another.
func New(t testing.TB) *Certs {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "Tern test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testcert: create CA: %v", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testcert: parse CA: %v", err)
	}
	c := &Certs{CA: ca, CAPool: x509.NewCertPool(), t: t, caKey: key}
	c.CAPool.AddCert(ca)
	c.Server = c.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: ServerCommonName},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	c.Client = c.ClientCert(ClientCommonName)
	return c
}

// ClientCert issues another client certificate, with the given Common Name.
func (c *Certs) ClientCert(commonName string) tls.Certificate {
	c.t.Helper()
	return c.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// ServerConfig returns a server configuration presenting Server, with the
// given client authentication policy and the authority as the trusted
// client CA.
func (c *Certs) ServerConfig(auth tls.ClientAuthType) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.Server},
		ClientAuth:   auth,
		ClientCAs:    c.CAPool,
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientConfig returns a client configuration that trusts the authority and
// presents the given certificates (none, Client, or others).
func (c *Certs) ClientConfig(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: certs,
		RootCAs:      c.CAPool,
		MinVersion:   tls.VersionTLS12,
	}
}

// issue signs tmpl with the authority, with a fresh key, serial and
// validity period.
func (c *Certs) issue(tmpl *x509.Certificate) tls.Certificate {
	c.t.Helper()
	key := newKey(c.t)
	tmpl.SerialNumber = serial(c.t)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.CA, &key.PublicKey, c.caKey)
	if err != nil {
		c.t.Fatalf("testcert: issue %q: %v", tmpl.Subject.CommonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		c.t.Fatalf("testcert: parse %q: %v", tmpl.Subject.CommonName, err)
	}
	return tls.Certificate{Certificate: [][]byte{der, c.CA.Raw}, PrivateKey: key, Leaf: leaf}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testcert: generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("testcert: serial: %v", err)
	}
	return n
}
