package identity

// Reason says, in one stable snake_case word, why a credential was refused.
// It is used as a metric label and in access logs, so its values never
// change once released.
type Reason string

// Reasons a credential is refused. ReasonIssuerUnavailable means the keys of
// the token's issuer have never been fetched (the IdP has been unreachable
// since the issuer was configured): the caller is not at fault and the
// gateway answers 503 with Retry-After. Every other reason is a 401
// invalid_token (RFC 6750 §3.1), or an unknown API key.
const (
	// ReasonMissing: no credential was presented (empty token).
	ReasonMissing Reason = "missing"
	// ReasonMalformed: not a compact JWS with three base64url parts, a
	// header or payload that is not a JSON object, an unsupported crit
	// header, a claim of the wrong type.
	ReasonMalformed Reason = "malformed"
	// ReasonTooLarge: the token is longer than the provider accepts.
	ReasonTooLarge Reason = "too_large"
	// ReasonAlgNotAllowed: the alg header is not in the provider's list
	// (alg none and HMAC algorithms never are).
	ReasonAlgNotAllowed Reason = "alg_not_allowed"
	// ReasonUnknownIssuer: the iss claim names no configured provider.
	ReasonUnknownIssuer Reason = "unknown_issuer"
	// ReasonUnknownKey: no key of the issuer's JWKS matches the token's
	// kid and alg, even after a refetch.
	ReasonUnknownKey Reason = "unknown_key"
	// ReasonBadSignature: the signature does not verify with any candidate key.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonExpired: now is past exp plus the clock skew.
	ReasonExpired Reason = "expired"
	// ReasonNotYetValid: nbf is later than now plus the clock skew.
	ReasonNotYetValid Reason = "not_yet_valid"
	// ReasonIssuedInFuture: iat is later than now plus the clock skew.
	ReasonIssuedInFuture Reason = "issued_in_future"
	// ReasonWrongAudience: aud is absent or names none of the accepted audiences.
	ReasonWrongAudience Reason = "wrong_audience"
	// ReasonWrongType: the typ header is not the required one (RFC 9068 at+jwt).
	ReasonWrongType Reason = "wrong_type"
	// ReasonMissingClaim: a required claim (exp, iss, the subject claim) is absent.
	ReasonMissingClaim Reason = "missing_claim"
	// ReasonIssuerUnavailable: the issuer's keys have never been fetched.
	ReasonIssuerUnavailable Reason = "issuer_unavailable"
	// ReasonUnknownAPIKey: no consumer has this API key.
	ReasonUnknownAPIKey Reason = "unknown_api_key"
)

// Error is why a credential was refused. Detail is safe to show to the
// client (plain ASCII without quotes, fit for an RFC 6750 error_description)
// and never contains the token, a secret or any value copied from the
// token. Err is the underlying cause, for the log only; it never contains
// the token or its payload either.
type Error struct {
	Reason Reason
	Detail string
	Err    error
}

// Error formats the reason, the detail and the cause, for logs.
func (e *Error) Error() string {
	msg := "identity: " + string(e.Reason)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func fail(r Reason, detail string, cause error) *Error {
	return &Error{Reason: r, Detail: detail, Err: cause}
}
