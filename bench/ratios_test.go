package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// results builds a result per scenario from per-round requests/s (and a
// CPU time and one-connection p50 per scenario), with medians as run()
// computes them.
func results(rps map[string][]float64, cpu, p50 map[string]float64) map[string]*result {
	rs := map[string]*result{}
	for name, rounds := range rps {
		r := &result{Scenario: name}
		for _, v := range rounds {
			r.High = append(r.High, sample{RPS: v, CPUus: cpu[name]})
			r.One = append(r.One, sample{P50us: p50[name]})
		}
		r.HighMed, r.OneMed = median(r.High), median(r.One)
		rs[name] = r
	}
	return rs
}

func TestRatios(t *testing.T) {
	rs := results(map[string][]float64{
		"direct":                {90000, 90000, 90000},
		"nginx":                 {40000, 20000, 40000},
		"haproxy":               {40000, 40000, 40000},
		"gatehouse-passthrough": {30000, 18000, 28000},
		"gatehouse-full-chain":  {27000, 15000, 21000},
		"baseline-passthrough":  {25000, 15000, 28000},
		"caddy":                 {20000, 20000, 35000},
		"oauth2-proxy-jwt":      {9000, 3000, 10500},
		"nginx-forwarding":      {36000, 18000, 40000},
	}, map[string]float64{"nginx": 12, "gatehouse-passthrough": 18, "gatehouse-full-chain": 21, "baseline-passthrough": 20, "caddy": 24, "oauth2-proxy-jwt": 84, "nginx-forwarding": 15},
		map[string]float64{"direct": 60, "nginx": 85, "gatehouse-passthrough": 100, "caddy": 95, "oauth2-proxy-jwt": 160, "nginx-forwarding": 92})
	rep := &report{Ratios: map[string]float64{}, Targets: map[string]string{}}
	ratios(rep, rs)
	want := map[string]float64{
		// medians: nginx 40000, passthrough 28000
		"passthrough_vs_nginx_rps": 0.7,
		// per round: 0.75, 0.9, 0.7 -> 0.75 (a slow round for both counts as one)
		"passthrough_vs_nginx_rps_round_median": 0.75,
		// per round: 0.9, 0.8333, 0.75 -> 0.8333
		"full_chain_vs_passthrough_rps_round_median": 15000.0 / 18000,
		"passthrough_vs_nginx_cpu_per_request":       1.5,
		"passthrough_added_p50_us_1conn":             40,
		"nginx_added_p50_us_1conn":                   25,
		"p50_gap_vs_nginx_us_1conn_round_median":     15,
		// per round: 1.2, 1.2, 1.0 -> 1.2
		"passthrough_vs_baseline_rps_round_median": 1.2,
		"passthrough_vs_baseline_cpu_per_request":  0.9,
		// medians: haproxy 40000; per round: 0.75, 0.45, 0.7 -> 0.7
		"passthrough_vs_haproxy_rps":              0.7,
		"passthrough_vs_haproxy_rps_round_median": 0.7,
		// medians: caddy 20000; per round: 1.5, 0.9, 0.8 -> 0.9
		"passthrough_vs_caddy_rps":              1.4,
		"passthrough_vs_caddy_rps_round_median": 0.9,
		"passthrough_vs_caddy_cpu_per_request":  0.75,
		"caddy_added_p50_us_1conn":              35,
		// medians: full chain 21000, oauth2-proxy 9000; per round: 3, 5, 2 -> 3
		"full_chain_vs_oauth2_proxy_rps":              21000.0 / 9000,
		"full_chain_vs_oauth2_proxy_rps_round_median": 3,
		"full_chain_vs_oauth2_proxy_cpu_per_request":  0.25,
		"oauth2_proxy_added_p50_us_1conn":             100,
		// medians: nginx-forwarding 36000; per round: 0.833, 1.0, 0.7 -> 0.833
		"passthrough_vs_nginx_forwarding_rps":               28000.0 / 36000,
		"passthrough_vs_nginx_forwarding_rps_round_median":  30000.0 / 36000,
		"passthrough_vs_nginx_forwarding_cpu_per_request":   1.2,
		"p50_gap_vs_nginx_forwarding_us_1conn_round_median": 8,
	}
	for k, v := range want {
		if got, ok := rep.Ratios[k]; !ok || math.Abs(got-v) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if _, ok := rep.Ratios["full_chain_vs_baseline_cpu_per_request"]; ok {
		t.Error("a full-chain baseline ratio without a baseline-full-chain scenario")
	}
	for k, v := range map[string]string{
		"passthrough >= 1.0x nginx req/s":       "NOT met",
		"full chain >= 0.85x passthrough req/s": "NOT met", // per round 0.8333 (medians: 0.75)
		"1-conn added p50 <= nginx's":           "NOT met", // 15 µs more in every round
	} {
		if rep.Targets[k] != v {
			t.Errorf("target %q: %q, want %q", k, rep.Targets[k], v)
		}
	}
}

// Without the reference proxies (not installed) there is no ratio or
// target against them.
func TestRatios_WithoutReferences(t *testing.T) {
	rs := results(map[string][]float64{"direct": {1000}, "gatehouse-passthrough": {500}}, nil, nil)
	rep := &report{Ratios: map[string]float64{}, Targets: map[string]string{}}
	ratios(rep, rs)
	if len(rep.Targets) != 0 || rep.Ratios["passthrough_vs_direct_rps"] != 0.5 {
		t.Fatalf("ratios %v, targets %v", rep.Ratios, rep.Targets)
	}
	for k := range rep.Ratios {
		for _, ref := range []string{"nginx", "haproxy", "caddy", "oauth2_proxy"} {
			if strings.Contains(k, ref) {
				t.Errorf("%s without %s", k, ref)
			}
		}
	}
}

// The targets are judged on the per-round medians, which a change of the
// machine's load between rounds moves less than the ratio of medians:
// here every target is met by the former and missed by the latter.
func TestRatios_TargetsPerRound(t *testing.T) {
	rs := results(map[string][]float64{
		"direct": {90000, 90000, 90000},
		"nginx":  {20000, 40000, 40000}, // median 40000
		// per round 1.1, 1.1, 0.5 -> 1.1; median 22000 -> 0.55 of nginx's
		"gatehouse-passthrough": {22000, 44000, 20000},
		// per round 0.773, 0.9, 0.9 -> 0.9; median 18000 -> 0.818 of passthrough's
		"gatehouse-full-chain": {17000, 39600, 18000},
	}, nil, nil)
	// One connection: per round -2, +8, -5 µs against nginx -> -2;
	// medians 100 against 92.
	for i, v := range []float64{90, 100, 100} {
		rs["gatehouse-passthrough"].One[i].P50us = v
	}
	for i, v := range []float64{92, 92, 105} {
		rs["nginx"].One[i].P50us = v
	}
	for _, r := range rs {
		r.HighMed, r.OneMed = median(r.High), median(r.One)
	}
	rep := &report{Ratios: map[string]float64{}, Targets: map[string]string{}}
	ratios(rep, rs)
	if rep.Ratios["passthrough_vs_nginx_rps"] >= 1 || rep.Ratios["full_chain_vs_passthrough_rps"] >= 0.85 ||
		rep.Ratios["passthrough_added_p50_us_1conn"] <= rep.Ratios["nginx_added_p50_us_1conn"] {
		t.Fatalf("the ratios of medians should miss every target: %v", rep.Ratios)
	}
	for k, v := range map[string]string{
		"passthrough >= 1.0x nginx req/s":       "met",
		"full chain >= 0.85x passthrough req/s": "met",
		"1-conn added p50 <= nginx's":           "met",
	} {
		if rep.Targets[k] != v {
			t.Errorf("target %q: %q, want %q (ratios %v)", k, rep.Targets[k], v, rep.Ratios)
		}
	}
	if got := rep.Ratios["p50_gap_vs_nginx_us_1conn_round_median"]; got != -2 {
		t.Errorf("per-round p50 gap %v, want -2", got)
	}
}

// -report computes the ratios and targets of a saved run again.
func TestRereport(t *testing.T) {
	rs := results(map[string][]float64{
		"direct":                {90000, 90000, 90000},
		"nginx":                 {20000, 40000, 40000},
		"gatehouse-passthrough": {22000, 44000, 20000},
	}, nil, nil)
	saved := &report{Date: "then", Ratios: map[string]float64{"stale": 1}, Targets: map[string]string{"passthrough >= 1.0x nginx req/s": "NOT met"}}
	for _, n := range []string{"direct", "nginx", "gatehouse-passthrough"} {
		saved.Results = append(saved.Results, rs[n])
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
	b, _ := json.Marshal(saved)
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rereport(in, out); err != nil {
		t.Fatal(err)
	}
	var got report
	b, err := os.ReadFile(out)
	if err == nil {
		err = json.Unmarshal(b, &got)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got.Date != "then" || got.Targets["passthrough >= 1.0x nginx req/s"] != "met" || got.Ratios["stale"] != 0 ||
		math.Abs(got.Ratios["passthrough_vs_nginx_rps_round_median"]-1.1) > 1e-9 {
		t.Errorf("rereported: date %q, targets %v, ratios %v", got.Date, got.Targets, got.Ratios)
	}
	if err := rereport(filepath.Join(dir, "missing.json"), ""); err == nil {
		t.Error("a missing file: no error")
	}
}

// A round measures the scenarios behind the targets next to each other,
// nginx right before Gatehouse passthrough, the other references after.
func TestMeasureOrder(t *testing.T) {
	var in []scenario
	for _, n := range []string{"direct", "nginx", "nginx-forwarding", "haproxy", "caddy", "oauth2-proxy-jwt",
		"gatehouse-passthrough", "gatehouse-full-chain", "baseline-passthrough", "baseline-full-chain"} {
		in = append(in, scenario{Name: n})
	}
	var got []string
	for _, s := range measureOrder(in) {
		got = append(got, s.Name)
	}
	want := "direct nginx gatehouse-passthrough baseline-passthrough gatehouse-full-chain baseline-full-chain nginx-forwarding haproxy caddy oauth2-proxy-jwt"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
	if in[2].Name != "nginx-forwarding" {
		t.Error("measureOrder reordered its argument")
	}
}

// The backend's CPU per request behind each proxy, and where passthrough's
// extra CPU on the shared core goes.
func TestRatios_SharedCore(t *testing.T) {
	rs := oneRound(map[string][2]sample{
		"direct":                {{RPS: 80000, CPUus: 11, SysUs: 8, BackendUs: 11}, {P50us: 50}},
		"nginx":                 {{RPS: 36000, CPUus: 14, SysUs: 11, BackendUs: 11.5}, {P50us: 50}},
		"gatehouse-passthrough": {{RPS: 32000, CPUus: 16.5, SysUs: 11.5, BackendUs: 12.5}, {P50us: 50}},
	})
	rep := &report{Ratios: map[string]float64{}, Targets: map[string]string{}}
	ratios(rep, rs)
	want := map[string]float64{
		"passthrough_vs_nginx_backend_cpu_per_request":     12.5 / 11.5,
		"passthrough_vs_nginx_shared_core_cpu_per_request": 29.0 / 25.5,
		"passthrough_vs_nginx_extra_us_user":               2.0,
		"passthrough_vs_nginx_extra_us_kernel":             0.5,
		"passthrough_vs_nginx_extra_us_backend":            1.0,
	}
	checkRatios(t, rep, want, "+3.5 µs (Gatehouse's user space +2.0, its kernel time +0.5, the backend's +1.0)")

	// Results from before the backend was measured give none of them.
	for _, r := range rs {
		r.HighMed.BackendUs = 0
	}
	rep = &report{Ratios: map[string]float64{}, Targets: map[string]string{}}
	ratios(rep, rs)
	for k := range want {
		if _, ok := rep.Ratios[k]; ok {
			t.Errorf("%s present without the backend's CPU", k)
		}
	}
}

// direct-forwarding against direct: what the forwarded fields cost the
// backend, under load and at one connection.
func TestRatios_ForwardedFields(t *testing.T) {
	rs := oneRound(map[string][2]sample{
		"direct":            {{RPS: 80000, CPUus: 10.5}, {P50us: 60}},
		"direct-forwarding": {{RPS: 72000, CPUus: 11.7}, {P50us: 62}},
	})
	rep := &report{Ratios: map[string]float64{}, Targets: map[string]string{},
		Interleaved: &interleaved{Cycles: 100, P50us: map[string]float64{"direct": 70, "direct-forwarding": 71.5},
			GapUs: map[string]map[string]float64{"direct-forwarding": {"direct": 1.25}, "direct": {"direct-forwarding": -1.25}}}}
	ratios(rep, rs)
	want := map[string]float64{
		"direct_forwarding_vs_direct_rps_round_median":           0.9,
		"forwarded_fields_backend_extra_us":                      1.2,
		"forwarded_fields_added_p50_us_1conn_round_median":       2,
		"forwarded_fields_added_p50_us_1conn_interleaved_paired": 1.25,
	}
	checkRatios(t, rep, want, "+1.2 µs of the backend's CPU per request, 0.900× its requests/s, +1.2 µs at one connection (in turn, paired)")
}

// oneRound builds a result per scenario from one round's sample at high
// load and at one connection.
func oneRound(samples map[string][2]sample) map[string]*result {
	rs := map[string]*result{}
	for name, s := range samples {
		r := &result{Scenario: name, High: []sample{s[0]}, One: []sample{s[1]}}
		r.HighMed, r.OneMed = median(r.High), median(r.One)
		rs[name] = r
	}
	return rs
}

// checkRatios checks rep's ratios against want, and that its printed
// report holds line.
func checkRatios(t *testing.T, rep *report, want map[string]float64, line string) {
	t.Helper()
	for k, v := range want {
		if got, ok := rep.Ratios[k]; !ok || math.Abs(got-v) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	var out strings.Builder
	printReport(&out, rep)
	if !strings.Contains(out.String(), line) {
		t.Errorf("the report does not say %q:\n%s", line, out.String())
	}
}
