// Package securitytest holds the helpers of the gateway's attack, fault
// and fuzz tests: a raw-socket backend that records the exact bytes it
// receives, a whole gateway process started in-process on loopback with a
// captured access log, raw HTTP/1.1 and HTTP/2 clients, a goroutine-leak
// check and a writer of Go fuzz seed corpora.
//
// It is imported by tests only; nothing in the gateway's production
// packages imports it. The attack tests themselves live in this
// directory's _test.go files, one threat per named test (see
// docs/security.md).
package securitytest
