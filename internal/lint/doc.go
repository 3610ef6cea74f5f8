// Package lint checks a compiled configuration for routes that are
// probably not what their author meant: routes anyone may call, routes no
// request can reach, and routes whose auth does not match what the
// backend's OpenAPI document says it needs. It never changes anything and
// never contacts the network; `gatehouse lint` prints what it finds.
//
// Every check works on a configuration that validates and compiles, and
// reachability is judged by the compiled snapshot's own router
// (Snapshot.Route), not by a copy of its rules. For each route lint builds
// sample requests: the host is each of the API's hosts (a wildcard
// *.example.com becomes gatehouse-lint-sample.example.com; an API without
// hosts gets a placeholder host that no API names), each {param} becomes a
// sample segment and a last {rest...} becomes an empty, a one-segment and
// a two-segment tail. A route is reached on a host when at least one of its
// samples resolves to it.
//
// The checks and their codes:
//
//   - unauthenticated-route (warning): an API without operations whose
//     auth is anonymous, or an operation whose effective auth (its own, or
//     else its API's) is anonymous. Anonymous routes are allowed; the
//     warning makes them a conscious choice.
//
//   - shadowed-operation: an operation that, for some method and host, is
//     never the one its samples resolve to, because another operation or
//     API is matched first (a longer path_prefix on the same hosts, an
//     exact host before a wildcard one, a 405 from an API that owns the
//     path). Warning when it is still reached for another method or host,
//     error when it is reached for none. The hosts checked are the
//     operation's own, and also, for an API without hosts, every host
//     other APIs name, and for a wildcard API, the exact hosts under its
//     domain.
//
//   - shadowed-api: an API none of whose operations is reached anywhere
//     (error), reported once instead of once per operation; for an API
//     without operations, its prefix samples are reached on none of the
//     hosts (error) or only on some (warning).
//
//   - setting-without-effect: a setting the rest of the configuration
//     leaves idle, such as a rate limit's on_redis_failure without
//     storage.redis (warning).
//
// For an API with openapi.spec, each operation of the document is routed
// with the document's path (its parameters filled with samples) under the
// API's path_prefix, and, when the document's path already starts with
// the prefix, as it is (the same two readings as request validation). The
// document's servers are not used. The route found is the first of the
// API's own operations that a host of the API resolves it to. The
// operation's security requirement is its own security, else the
// document's global security; a list that is empty or holds an empty
// requirement {} allows anonymous calls, and then nothing below applies.
// Scheme kinds are mapped as by `gatehouse import openapi`: oauth2,
// openIdConnect and http bearer are jwt; apiKey is api_key; mutualTLS is
// mtls; other schemes (http basic...) match no gateway credential.
//
//   - backend-requires-auth (error): the document requires security and
//     the route is anonymous.
//
//   - scheme-not-accepted (warning): the route accepts none of the
//     credential kinds of the schemes the requirement lists (a requirement
//     is accepted when the route accepts the kind of any one of its
//     schemes).
//
//   - scope-not-enforced (warning): among the accepted requirements, none
//     has all its scopes (those listed for its jwt-kind schemes) required
//     by the route. A scope is required when it is in
//     require.scopes.all_of, or is the only entry of require.scopes.any_of.
//     The finding lists the missing scopes of the requirement closest to
//     being enforced. A requirement without scopes is always enforced.
//
//   - operation-not-routed (info): no host of the API resolves the
//     document's method and path to one of the API's operations (404, 405,
//     another API, or a CORS preflight answered by the gateway).
//
//   - operation-not-documented (info): an operation of the API (for one of
//     its methods) that no document operation resolves to. APIs without
//     operations are not checked.
//
// Findings carry the position and dotted path of the configuration key
// they are about, like validation diagnostics.
package lint
