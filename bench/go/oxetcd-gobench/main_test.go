package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

func defaults() *options {
	return &options{endpoints: "127.0.0.1:2379", conns: 1, clients: 1, total: 10000, dialTimeout: 5}
}

func TestGlobalFlagsGoBeforeOrAfterTheCommand(t *testing.T) {
	o := defaults()
	_, err := parse(strings.Fields("--endpoints a:1,b:2 --conns=100 put --clients 1000 --total=5 --val-size 256 --json --max-seconds=9"), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.endpoints != "a:1,b:2" || o.conns != 100 || o.clients != 1000 || o.total != 5 || !o.json || o.maxSeconds != 9 {
		t.Fatalf("%+v", o)
	}
}

func TestCommandsAndTheirArguments(t *testing.T) {
	for _, ok := range []string{
		"range foo --consistency s fop --limit 3",
		"range --random-keys 10",
		"txn-put --txn-ops 4 --key-space-size 100",
		"watch-fanout --watchers 4 --streams 2",
		"lease-keepalive --clients 3",
	} {
		if _, err := parse(strings.Fields(ok), defaults(), io.Discard); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "bogus", "put extra", "put --bogus", "--conns 0 put", "put --clients=0"} {
		if _, err := parse(strings.Fields(bad), defaults(), io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestUserIsNameColonPassword(t *testing.T) {
	name, password, err := splitUser("bench:s3:cret")
	if err != nil || name != "bench" || password != "s3:cret" {
		t.Fatalf("%q %q %v", name, password, err)
	}
	for _, bad := range []string{"bench", ":pw"} {
		if _, _, err := splitUser(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestKeysHaveTheSizeAndWrapInTheSpace(t *testing.T) {
	kv, err := newKeyValues(8, 256, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if kv.key(1) != "00000001" || kv.key(1001) != kv.key(1) || len(kv.value) != 256 {
		t.Fatalf("%q %q %d", kv.key(1), kv.key(1001), len(kv.value))
	}
	if kv, _ := newKeyValues(8, 8, 10, 1000); kv.key(9) != "00001009" || kv.key(10) != "00001000" {
		t.Fatalf("offset: %q %q", kv.key(9), kv.key(10))
	}
	if _, err := newKeyValues(1, 8, 11, 0); err == nil {
		t.Fatal("11 keys fit in one digit")
	}
}

func TestRngIsSplitmix64(t *testing.T) {
	r := rng(0)
	if got := r.next(); got != 0xe220a8397b1dcdaf {
		t.Fatalf("%x", got)
	}
	for i := 0; i < 1000; i++ {
		if r.below(10) >= 10 {
			t.Fatal("out of bounds")
		}
	}
}

func sample() *report {
	r := newReport("put")
	r.elapsed = 2 * time.Second
	for us := 100; us >= 1; us-- {
		r.latency = append(r.latency, time.Duration(us)*time.Microsecond)
	}
	r.errors["Unavailable: no leader"] = 3
	r.finish()
	return r
}

func TestJSONHasCountsRatesAndPercentiles(t *testing.T) {
	var buf bytes.Buffer
	if err := sample().writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Workload       string
		Requests, OK   int
		ErrorsTotal    int                `json:"errors_total"`
		RequestsPerSec float64            `json:"requests_per_sec"`
		LatencyMs      map[string]float64 `json:"latency_ms"`
		Histogram      []jsonBucket
	}
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Workload != "put" || v.Requests != 103 || v.OK != 100 || v.ErrorsTotal != 3 || v.RequestsPerSec != 50 {
		t.Fatalf("%+v", v)
	}
	if v.LatencyMs["p50"] != 0.05 || v.LatencyMs["p99"] != 0.099 || v.LatencyMs["slowest"] != 0.1 || v.LatencyMs["fastest"] != 0.001 {
		t.Fatalf("%v", v.LatencyMs)
	}
	total := 0
	for _, b := range v.Histogram {
		total += b.Count
	}
	if len(v.Histogram) != histogramRows || total != 100 {
		t.Fatalf("%+v", v.Histogram)
	}
}

func TestTextHasOxetcdBenchsSummaryLines(t *testing.T) {
	var buf bytes.Buffer
	sample().writeText(&buf)
	for _, line := range []string{"Summary (put):", "Requests:\t100 ok, 3 failed", "Requests/sec:\t50.00",
		"Response time histogram", "    p99 in 0.0990 ms", "[3]\tUnavailable: no leader", "∎"} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("%q missing from\n%s", line, buf.String())
		}
	}
}
