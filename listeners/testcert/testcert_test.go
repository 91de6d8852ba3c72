package testcert

import (
	"crypto/x509"
	"testing"
)

func TestCertificatesVerify(t *testing.T) {
	c := New(t)
	other := New(t)
	server, client := c.Server.Leaf, c.Client.Leaf
	if _, err := server.Verify(x509.VerifyOptions{Roots: c.CAPool, DNSName: "localhost"}); err != nil {
		t.Errorf("server certificate for localhost: %v", err)
	}
	if err := server.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("server certificate for 127.0.0.1: %v", err)
	}
	clientOpts := x509.VerifyOptions{Roots: c.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := client.Verify(clientOpts); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if client.Subject.CommonName != ClientCommonName {
		t.Errorf("client Common Name %q, want %q", client.Subject.CommonName, ClientCommonName)
	}
	if cn := c.ClientCert("device-9").Leaf.Subject.CommonName; cn != "device-9" {
		t.Errorf("ClientCert Common Name %q, want device-9", cn)
	}
	if _, err := other.Client.Leaf.Verify(clientOpts); err == nil {
		t.Error("a certificate from another New verifies against this authority")
	}
}
