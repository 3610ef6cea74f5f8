package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// AuditRecord is one entry of the audit log.
type AuditRecord struct {
	// Seq numbers records from 1, without gaps.
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	// Actor is who did it: "key:NAME", "jwt:ISSUER-NAME:SUBJECT",
	// "local" (insecure_local), or "system".
	Actor string `json:"actor"`
	// Action is what was done: instance.register, key.rotate,
	// admin.denied, config.reload, ...
	Action string `json:"action"`
	// Target is what it was done to: services/orders/instances/10.0.0.5:8080.
	Target string `json:"target"`
	// Outcome is success, failure or denied.
	Outcome string `json:"outcome"`
	// Detail says more, for people.
	Detail string `json:"detail,omitempty"`
	// Before and After are JSON documents of the target's state (never
	// secrets), or empty.
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
	// PrevHash is the Hash of record Seq-1 ("" for the first record).
	PrevHash string `json:"prev_hash"`
	// Hash is AuditHash of this record.
	Hash string `json:"hash"`
}

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// AuditTimeFormat is how Time enters the hash: UTC, RFC 3339 with
// nanoseconds. Implementations store times at least this precisely.
const AuditTimeFormat = "2006-01-02T15:04:05.000000000Z"

// AuditHash computes the hash of r that chains it to its predecessor.
//
// The canonical encoding is the ASCII line "gatehouse-audit-v1\n"
// followed by ten fields, in this order: seq (decimal), time (UTC,
// AuditTimeFormat), actor, action, target, outcome, detail, before, after,
// prev_hash. Each field is written as its length in bytes in decimal, a
// ':', the bytes, and a ','  (a netstring), so no choice of field
// contents can make two different records encode alike. Hash is the
// lowercase hex SHA-256 of that encoding. Because prev_hash is inside,
// changing any record changes every later hash.
func AuditHash(r AuditRecord) string {
	h := sha256.New()
	h.Write([]byte("gatehouse-audit-v1\n"))
	var num [20]byte
	field := func(s string) {
		h.Write(strconv.AppendInt(num[:0], int64(len(s)), 10))
		h.Write([]byte{':'})
		h.Write([]byte(s))
		h.Write([]byte{','})
	}
	field(strconv.FormatInt(r.Seq, 10))
	field(r.Time.UTC().Format(AuditTimeFormat))
	field(r.Actor)
	field(r.Action)
	field(r.Target)
	field(r.Outcome)
	field(r.Detail)
	field(r.Before)
	field(r.After)
	field(r.PrevHash)
	return hex.EncodeToString(h.Sum(nil))
}
