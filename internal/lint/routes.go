package lint

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// sampleLabel starts every sample host and segment, so that no literal
// of a real configuration is likely to equal one.
const sampleLabel = "gatehouse-lint-sample"

// freeHost returns a host that no API names exactly or by a wildcard. A
// host without a dot never matches a wildcard (*.example.com).
func (l *linter) freeHost() string {
	exact := l.exactHosts()
	for n := 0; ; n++ {
		h := sampleLabel
		if n > 0 {
			h = fmt.Sprintf("%s-%d", sampleLabel, n)
		}
		if !slices.Contains(exact, h) {
			return h
		}
	}
}

// exactHosts returns every exact host that an API names, in order.
func (l *linter) exactHosts() []string {
	var out []string
	for i := range l.cfg.APIs {
		for _, h := range l.cfg.APIs[i].Hosts {
			if !strings.HasPrefix(h, "*") && !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// wildcardSample returns a host that the wildcard suffix (".example.com")
// matches and that no API names exactly.
func (l *linter) wildcardSample(suffix string) string {
	exact := l.exactHosts()
	for n := 0; ; n++ {
		h := sampleLabel + suffix
		if n > 0 {
			h = fmt.Sprintf("%s-%d%s", sampleLabel, n, suffix)
		}
		if !slices.Contains(exact, h) {
			return h
		}
	}
}

// hostSamples returns the hosts on which the routes of a are tried: its
// own hosts (a sample host for a wildcard), and the hosts where other
// APIs may take its paths first: for a wildcard, the exact hosts under
// it; for an API without hosts, every host any API names.
func (l *linter) hostSamples(a *config.API) []string {
	var out []string
	add := func(h string) {
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if len(a.Hosts) == 0 {
		add(l.placeholder)
		for _, h := range l.exactHosts() {
			add(h)
		}
		for i := range l.cfg.APIs {
			for _, h := range l.cfg.APIs[i].Hosts {
				if suffix, ok := strings.CutPrefix(h, "*"); ok {
					add(l.wildcardSample(suffix))
				}
			}
		}
		return out
	}
	for _, h := range a.Hosts {
		suffix, ok := strings.CutPrefix(h, "*")
		if !ok {
			add(h)
			continue
		}
		add(l.wildcardSample(suffix))
		for _, e := range l.exactHosts() {
			if len(e) > len(suffix) && strings.HasSuffix(e, suffix) {
				add(e)
			}
		}
	}
	return out
}

// hostName names a sample host in a message.
func (l *linter) hostName(h string) string {
	if h == l.placeholder {
		return "a host no API names"
	}
	if strings.HasPrefix(h, sampleLabel) {
		return h + " (a sample of its wildcard)"
	}
	return "host " + h
}

// pathSamples returns sample request paths for a template under a
// normalized prefix: each {param} becomes a sample segment, and a last
// {rest...} an empty, a one-segment and a two-segment tail.
func pathSamples(prefix string, segs []config.Segment) []string {
	var b strings.Builder
	tail := false
	for i, s := range segs {
		switch s.Kind {
		case config.Literal:
			b.WriteString("/" + s.Value)
		case config.Param:
			fmt.Fprintf(&b, "/%s-p%d", sampleLabel, i+1)
		case config.CatchAll:
			tail = true
		}
	}
	base := b.String()
	out := []string{joinPath(prefix, orRoot(base))}
	if tail {
		out = append(out,
			joinPath(prefix, base+"/"+sampleLabel+"-t1"),
			joinPath(prefix, base+"/"+sampleLabel+"-t1/"+sampleLabel+"-t2"))
	}
	return out
}

func orRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// outcome is what one sample request resolved to when it missed its
// route.
type outcome struct {
	method, host, path string
	desc               string // "is served by ...", "gets 404 ..."
}

// reach tries the samples of the route at configPath for one method on
// every host. It returns whether some sample reached it on each host, and
// for each host where none did, what the first sample met instead.
func (l *linter) reach(a *config.API, configPath, method string, paths []string) (reached []string, missed []outcome) {
	for _, h := range l.hostSamples(a) {
		var first *outcome
		hit := false
		for _, p := range paths {
			op, allow, found := l.snap.Route(h, method, p)
			if op != nil && op.ConfigPath == configPath {
				hit = true
				break
			}
			if first != nil {
				continue
			}
			o := outcome{method: method, host: h, path: p}
			switch {
			case op != nil:
				o.desc = "is served by " + l.where(op)
			case found:
				o.desc = fmt.Sprintf("gets 405 (Allow: %s)%s", allow, l.ownerText(a, h, method, p, false))
			default:
				o.desc = "gets 404" + l.ownerText(a, h, method, p, true)
			}
			first = &o
		}
		if hit {
			reached = append(reached, h)
		} else if first != nil {
			missed = append(missed, *first)
		}
	}
	return reached, missed
}

// ownerText explains a 404 or 405 met by a sample of a on host h: another
// API whose path_prefix is the longest that matches, among those the
// router tries for h, owns the path and has no operation for it. For a
// 404 that API is looked for first in a's own host group (the group that
// would have served a). It is an explanation only; the verdict comes from
// the router.
func (l *linter) ownerText(a *config.API, h, method, path string, notFound bool) string {
	type cand struct {
		api   *config.API
		index int
		rank  int
		plen  int
	}
	var cands []cand
	for i := range l.cfg.APIs {
		b := &l.cfg.APIs[i]
		rank := groupRank(b, h)
		if b == a || rank < 0 {
			continue
		}
		prefix := prefixOf(b)
		p := path
		if b.CaseInsensitivePaths {
			p, prefix = strings.ToLower(p), strings.ToLower(prefix)
		}
		if !underPrefix(p, prefix) {
			continue
		}
		cands = append(cands, cand{b, i, rank, len(prefix)})
	}
	own := groupRank(a, h)
	sort.SliceStable(cands, func(i, j int) bool {
		ci, cj := cands[i], cands[j]
		if notFound && (ci.rank == own) != (cj.rank == own) {
			return ci.rank == own
		}
		if ci.rank != cj.rank {
			return ci.rank < cj.rank
		}
		return ci.plen > cj.plen
	})
	if len(cands) == 0 {
		return ""
	}
	c := cands[0]
	return fmt.Sprintf(": API %q (apis[%d], path_prefix %s) owns the path there and has no %s operation for it", c.api.Name, c.index, prefixOf(c.api), method)
}

// groupRank is the router's order of the host group in which it tries a
// for host h: 0 for an exact host, then wildcards (the longest suffix
// first), then APIs without hosts; -1 when a is not tried for h.
func groupRank(a *config.API, h string) int {
	if len(a.Hosts) == 0 {
		return 1 << 20
	}
	rank := -1
	for _, ah := range a.Hosts {
		if ah == h {
			return 0
		}
		if suffix, ok := strings.CutPrefix(ah, "*"); ok && len(h) > len(suffix) && strings.HasSuffix(h, suffix) {
			if r := 1<<19 - len(suffix); rank < 0 || r < rank {
				rank = r
			}
		}
	}
	return rank
}

// underPrefix reports whether path is prefix or under it at a segment
// boundary, as the router matches prefixes.
func underPrefix(path, prefix string) bool {
	if prefix == "/" {
		return true
	}
	rest, ok := strings.CutPrefix(path, prefix)
	return ok && (rest == "" || rest[0] == '/')
}

// shadowing reports operations and APIs that their sample requests do not
// reach.
func (l *linter) shadowing() {
	for i := range l.cfg.APIs {
		a := &l.cfg.APIs[i]
		p := config.Index("apis", i)
		prefix := prefixOf(a)
		if len(a.Operations) == 0 {
			reached, missed := l.reach(a, p, "GET", pathSamples(prefix, []config.Segment{{Kind: config.CatchAll}}))
			switch {
			case len(missed) == 0:
			case len(reached) == 0:
				l.add(Error, CodeShadowedAPI, p, "API %q can never be reached: %s. Change its hosts or path_prefix, or the other routes', or remove it",
					a.Name, l.outcomes(missed))
			default:
				l.add(Warning, CodeShadowedAPI, p, "API %q is shadowed on some hosts: %s. It is still reached on %s; if that is intended ignore this, else change its hosts or path_prefix, or the other routes'",
					a.Name, l.outcomes(missed), l.hostName(reached[0]))
			}
			continue
		}
		type result struct {
			index   int
			reached int // (method, host) pairs reached
			missed  []outcome
		}
		var results []result
		anyReached := false
		for j := range a.Operations {
			o := &a.Operations[j]
			segs, err := config.ParseTemplate(o.Path)
			if err != nil {
				continue // compiling reports it
			}
			opp := config.Index(config.Field(p, "operations"), j)
			r := result{index: j}
			for _, m := range o.OperationMethods() {
				reached, missed := l.reach(a, opp, m, pathSamples(prefix, segs))
				r.reached += len(reached)
				r.missed = append(r.missed, missed...)
			}
			anyReached = anyReached || r.reached > 0
			results = append(results, r)
		}
		if !anyReached && len(results) > 0 {
			var missed []outcome
			for _, r := range results {
				missed = append(missed, r.missed...)
			}
			l.add(Error, CodeShadowedAPI, p, "API %q can never be reached: none of its operations is; %s. Change its hosts or path_prefix, or the other routes', or remove it",
				a.Name, l.outcomes(missed))
			continue
		}
		for _, r := range results {
			if len(r.missed) == 0 {
				continue
			}
			o := &a.Operations[r.index]
			opp := config.Index(config.Field(p, "operations"), r.index)
			route := fmt.Sprintf("%s %s", strings.Join(o.OperationMethods(), ","), joinPath(prefix, o.Path))
			if r.reached == 0 {
				l.add(Error, CodeShadowedOperation, opp, "%s can never be reached: %s. Change its path (or its API's path_prefix or hosts) or the other route, or remove it",
					route, l.outcomes(r.missed))
				continue
			}
			l.add(Warning, CodeShadowedOperation, opp, "%s is shadowed for some requests: %s. It is still reached for other hosts or methods; if that is intended ignore this, else change its path (or its API's path_prefix or hosts) or the other route",
				route, l.outcomes(r.missed))
		}
	}
}

// outcomes describes misses for a message: the misses that met the same
// thing on several hosts are said once, with their hosts; at most three
// are said.
func (l *linter) outcomes(missed []outcome) string {
	const most = 3
	type group struct {
		o     outcome
		hosts []string
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, o := range missed {
		k := o.method + " " + o.path + " " + o.desc
		g := byKey[k]
		if g == nil {
			g = &group{o: o}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.hosts = append(g.hosts, l.hostName(o.host))
	}
	var parts []string
	for i, g := range groups {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(groups)-most))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s %s (on %s)", g.o.method, g.o.path, g.o.desc, strings.Join(g.hosts, ", ")))
	}
	return strings.Join(parts, "; ")
}
