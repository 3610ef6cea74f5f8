package gateway

import (
	"slices"
	"sort"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// MaxParams bounds the path parameters of one operation, so that matching
// can capture them in a fixed array.
const MaxParams = 16

// Router finds the operation for a host, method and normalized path. It is
// built once per snapshot and never changes; Match does not allocate.
type Router struct {
	exact    map[string][]*apiRoute
	wildcard []wildcardRoutes // longest suffix first
	anyHost  []*apiRoute
}

type wildcardRoutes struct {
	suffix string // ".example.com"
	apis   []*apiRoute
}

// apiRoute is one API under one host, with its operation tree.
type apiRoute struct {
	prefix string // "/" or "/orders"
	api    *API
	root   *node
	// all serves every method and path under the prefix when the API has
	// no operations.
	all *Operation
	// fold matches ignoring ASCII case (case_insensitive_paths): prefix
	// and literal segments are lower case, the path is lowered to match.
	fold bool
}

// node is a segment of the operation tree.
type node struct {
	literal  map[string]*node
	param    *node
	catchAll *methods
	here     *methods
}

// methods are the operations that end at one node, by method.
type methods struct {
	byMethod map[string]*Operation
	allow    string // Allow header value
}

// Match is the result of a routing lookup.
type Match struct {
	Op     *Operation
	Params [MaxParams]string
	NParam int
	// Allow is set (and Op nil) when the path matched but the method did not.
	Allow string
}

func newRouter() *Router {
	return &Router{exact: map[string][]*apiRoute{}}
}

// add registers an API with its operations under each of its hosts.
func (rt *Router) add(api *API, hosts []string, prefix string, ops []*Operation, all *Operation) {
	ar := &apiRoute{prefix: prefix, api: api, root: &node{}, all: all, fold: api.CaseInsensitivePaths}
	for _, op := range ops {
		ar.insert(op)
	}
	ar.root.finish()
	if len(hosts) == 0 {
		rt.anyHost = append(rt.anyHost, ar)
	}
	for _, h := range hosts {
		if suffix, ok := strings.CutPrefix(h, "*"); ok {
			i := slices.IndexFunc(rt.wildcard, func(w wildcardRoutes) bool { return w.suffix == suffix })
			if i < 0 {
				rt.wildcard = append(rt.wildcard, wildcardRoutes{suffix: suffix})
				i = len(rt.wildcard) - 1
			}
			rt.wildcard[i].apis = append(rt.wildcard[i].apis, ar)
			continue
		}
		rt.exact[h] = append(rt.exact[h], ar)
	}
}

// finish sorts every list so that the longest prefix and suffix win.
func (rt *Router) finish() {
	byPrefix := func(list []*apiRoute) {
		sort.SliceStable(list, func(i, j int) bool { return len(list[i].prefix) > len(list[j].prefix) })
	}
	for _, l := range rt.exact {
		byPrefix(l)
	}
	for i := range rt.wildcard {
		byPrefix(rt.wildcard[i].apis)
	}
	sort.SliceStable(rt.wildcard, func(i, j int) bool { return len(rt.wildcard[i].suffix) > len(rt.wildcard[j].suffix) })
	byPrefix(rt.anyHost)
}

func (ar *apiRoute) insert(op *Operation) {
	n := ar.root
	for _, s := range op.segments {
		switch s.Kind {
		case config.Literal:
			if n.literal == nil {
				n.literal = map[string]*node{}
			}
			c := n.literal[s.Value]
			if c == nil {
				c = &node{}
				n.literal[s.Value] = c
			}
			n = c
		case config.Param:
			if n.param == nil {
				n.param = &node{}
			}
			n = n.param
		case config.CatchAll:
			if n.catchAll == nil {
				n.catchAll = &methods{byMethod: map[string]*Operation{}}
			}
			for _, m := range op.Methods {
				n.catchAll.byMethod[m] = op
			}
			return
		}
	}
	if n.here == nil {
		n.here = &methods{byMethod: map[string]*Operation{}}
	}
	for _, m := range op.Methods {
		n.here.byMethod[m] = op
	}
}

func (n *node) finish() {
	for _, ms := range []*methods{n.here, n.catchAll} {
		if ms == nil {
			continue
		}
		// A GET operation also answers HEAD unless HEAD has its own.
		if op, ok := ms.byMethod["GET"]; ok {
			if _, ok := ms.byMethod["HEAD"]; !ok {
				ms.byMethod["HEAD"] = op
			}
		}
		names := make([]string, 0, len(ms.byMethod))
		for m := range ms.byMethod {
			names = append(names, m)
		}
		sort.Strings(names)
		ms.allow = strings.Join(names, ", ")
	}
	for _, c := range n.literal {
		c.finish()
	}
	if n.param != nil {
		n.param.finish()
	}
}

// Match routes a request. host may carry a port and any case; path is the
// normalized path. Match reports false when no API prefix or operation
// path matches (404); a path that matches with another method sets
// m.Allow (405).
//
// The APIs of the request's exact host are tried first, then those of
// the wildcard hosts that match it, then those without hosts. Within
// each group the longest matching prefix owns the path (matchList). A
// group that finds no operation for the path (no prefix, or an
// operation miss under the longest one) leaves it to the next group, so
// that an API for one host may take some paths of an API for every host
// and leave it the rest; a 405 ends the search.
func (rt *Router) Match(host, method, path string, m *Match) bool {
	if len(rt.exact) == 0 && len(rt.wildcard) == 0 {
		// No API names a host: every request goes to the APIs for every
		// host, whatever its Host.
		return rt.matchList(rt.anyHost, method, path, m)
	}
	host = canonicalHost(host)
	if list, ok := rt.exact[host]; ok {
		if rt.matchList(list, method, path, m) {
			return true
		}
	}
	for i := range rt.wildcard {
		w := &rt.wildcard[i]
		if len(host) > len(w.suffix) && strings.HasSuffix(host, w.suffix) {
			if rt.matchList(w.apis, method, path, m) {
				return true
			}
		}
	}
	return rt.matchList(rt.anyHost, method, path, m)
}

func (rt *Router) matchList(list []*apiRoute, method, path string, m *Match) bool {
	for _, ar := range list {
		p := path
		if ar.fold {
			p = lowerASCII(path) // allocates only if path has upper case
		}
		rest, ok := cutPrefix(p, ar.prefix)
		if !ok {
			continue
		}
		if ar.all != nil {
			m.Op, m.NParam = ar.all, 0
			return true
		}
		m.NParam = 0
		var allow string
		if op := ar.root.match(rest, method, m, &allow); op != nil {
			m.Op = op
			return true
		}
		if allow != "" {
			m.Op, m.Allow = nil, allow
			return true
		}
		// The longest matching prefix owns the path within the group:
		// an operation miss under it is not a fall-through to a shorter
		// prefix (Match may still try a less specific host group).
		return false
	}
	return false
}

// cutPrefix matches prefix at a segment boundary and returns the rest,
// which is empty or starts with '/'.
func cutPrefix(path, prefix string) (string, bool) {
	if prefix == "/" {
		if path == "/" {
			return "", true
		}
		return path, true
	}
	if !strings.HasPrefix(path, prefix) {
		return "", false
	}
	rest := path[len(prefix):]
	if rest == "" || rest[0] == '/' {
		if rest == "/" {
			rest = ""
		}
		return rest, true
	}
	return "", false
}

// match walks the tree for rest ("" or "/a/b"), preferring literal
// segments, then parameters, then a catch-all. When a path matches only
// with other methods, allow receives their Allow value.
func (n *node) match(rest, method string, m *Match, allow *string) *Operation {
	if rest == "" {
		if n.here != nil {
			if op := n.here.byMethod[method]; op != nil {
				return op
			}
			*allow = mergeAllow(*allow, n.here.allow)
		}
		return n.matchCatchAll("", method, m, allow)
	}
	seg := rest[1:]
	next := ""
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg, next = seg[:i], seg[i:]
	}
	if c := n.literal[seg]; c != nil {
		if op := c.match(next, method, m, allow); op != nil {
			return op
		}
	}
	if n.param != nil && seg != "" && m.NParam < MaxParams {
		saved := m.NParam
		m.Params[m.NParam] = seg
		m.NParam++
		if op := n.param.match(next, method, m, allow); op != nil {
			return op
		}
		m.NParam = saved
	}
	return n.matchCatchAll(rest[1:], method, m, allow)
}

func (n *node) matchCatchAll(rest, method string, m *Match, allow *string) *Operation {
	if n.catchAll == nil || m.NParam >= MaxParams {
		return nil
	}
	if op := n.catchAll.byMethod[method]; op != nil {
		m.Params[m.NParam] = rest
		m.NParam++
		return op
	}
	*allow = mergeAllow(*allow, n.catchAll.allow)
	return nil
}

// validHost reports whether h is a Host field value RFC 9112 §3.2 allows:
// empty, or uri-host [":" port] (RFC 3986 §3.2.2): an IP literal in
// brackets, or a registered name or IPv4 address (unreserved,
// percent-encoded and sub-delims characters, no colon), with a port of
// digits.
func validHost(h string) bool {
	host, port := h, ""
	if len(h) > 0 && h[0] == '[' {
		i := strings.IndexByte(h, ']')
		if i < 0 {
			return false
		}
		host, port = h[1:i], h[i+1:]
		if port != "" {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
		}
		for i := 0; i < len(host); i++ {
			if !hostChars[host[i]] && host[i] != ':' {
				return false
			}
		}
	} else {
		// One pass: the name's bytes up to a colon, then the port.
		i := 0
		for ; i < len(h); i++ {
			c := h[i]
			if !hostChars[c] {
				break
			}
			if c == '%' && (i+2 >= len(h) || !isHex(h[i+1]) || !isHex(h[i+2])) {
				return false // a percent-encoding is % and two hex digits
			}
		}
		if i < len(h) {
			if h[i] != ':' {
				return false
			}
			port = h[i+1:]
		}
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}

// hostChars are the bytes of a reg-name (RFC 3986 §3.2.2): unreserved,
// sub-delims and the % of a percent-encoding.
var hostChars = func() (t [256]bool) {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%") {
		t[c] = true
	}
	return t
}()

// canonicalHost lower-cases host and removes a port and a trailing dot,
// allocating only when the host has upper-case letters.
func canonicalHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// params returns the matched parameters as policy params.
func (m *Match) params() policy.Params {
	if m.Op == nil || m.NParam == 0 {
		return policy.Params{}
	}
	return policy.Params{Names: m.Op.paramNames, Values: m.Params[:m.NParam]}
}

// mergeAllow returns the union of two Allow values. It runs only for
// requests that end in 405.
func mergeAllow(a, b string) string {
	if a == "" || a == b {
		return b
	}
	set := strings.Split(a, ", ")
	for _, m := range strings.Split(b, ", ") {
		if !slices.Contains(set, m) {
			set = append(set, m)
		}
	}
	sort.Strings(set)
	return strings.Join(set, ", ")
}

// Route reports what the snapshot's router does with a request for host,
// method and an already normalized path, by the same Match that serving
// uses (paths answered before routing, such as the gateway's own
// well-known documents, are not considered). It returns the operation, or
// nil with found false for a 404, or nil with the Allow value for a 405.
// It exists so that offline tools (gatehouse lint) judge reachability by
// the real routing rules instead of a copy of them.
func (s *Snapshot) Route(host, method, path string) (op *Operation, allow string, found bool) {
	var m Match
	if !s.router.Match(host, method, path, &m) {
		return nil, "", false
	}
	return m.Op, m.Allow, true
}
