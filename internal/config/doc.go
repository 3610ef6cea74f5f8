// Package config defines the gateway's declarative configuration and turns
// YAML into it strictly: every unknown key, wrong type, malformed value and
// dangling reference is reported with its file, line, column and path.
// Nothing here runs on the request path; package gateway compiles a
// validated configuration into a snapshot.
package config
