package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// histogramRows is the number of rows of the latency histogram (text and JSON).
const histogramRows = 10

// barWidth is the width of the longest histogram bar.
const barWidth = 40

// percentiles are reported in this order, with these names (oxetcd-bench's).
var percentiles = []struct {
	name string
	q    float64
}{{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99.9", 0.999}}

// report is the outcome of one phase of a run: oxetcd-bench's report, field for field.
type report struct {
	name    string
	latency []time.Duration // of the successful requests; sorted by finish
	errors  map[string]int  // failed requests by "Code: message"
	elapsed time.Duration
	extra   map[string]int // workload-specific counters
	phases  []*report      // secondary measurements of the same run
}

func newReport(name string) *report {
	return &report{name: name, errors: map[string]int{}, extra: map[string]int{}}
}

func (r *report) ok() int { return len(r.latency) }

func (r *report) failed() int {
	n := 0
	for _, c := range r.errors {
		n += c
	}
	return n
}

func (r *report) requestsPerSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok()) / r.elapsed.Seconds()
}

// finish sorts the latencies (percentiles and the histogram need them in order).
func (r *report) finish() {
	sort.Slice(r.latency, func(i, j int) bool { return r.latency[i] < r.latency[j] })
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func (r *report) min() time.Duration {
	if len(r.latency) == 0 {
		return 0
	}
	return r.latency[0]
}

func (r *report) max() time.Duration {
	if len(r.latency) == 0 {
		return 0
	}
	return r.latency[len(r.latency)-1]
}

func (r *report) mean() float64 {
	if len(r.latency) == 0 {
		return 0
	}
	var sum float64
	for _, d := range r.latency {
		sum += float64(d)
	}
	return sum / float64(len(r.latency))
}

// percentile is the sample at rank ceil(q*n) (at least the first), as oxetcd-bench
// ranks them (it then rounds to its histogram bucket, within 0.8 %; these are exact).
func (r *report) percentile(q float64) time.Duration {
	n := len(r.latency)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return r.latency[rank-1]
}

type bucket struct {
	le    time.Duration
	count int
}

// linearBuckets splits [min, max] into up to n equal-width buckets, each with its
// upper bound and the samples at or below it (and above the previous bound).
func (r *report) linearBuckets(n int) []bucket {
	if len(r.latency) == 0 || n == 0 {
		return nil
	}
	lo, hi := r.min(), r.max()
	width := (hi - lo + 1 + time.Duration(n) - 1) / time.Duration(n)
	if width < 1 {
		width = 1
	}
	var out []bucket
	for k := 1; k <= n; k++ {
		le := lo + width*time.Duration(k) - 1
		if le > hi {
			le = hi
		}
		if len(out) == 0 || out[len(out)-1].le != le {
			out = append(out, bucket{le: le})
		}
	}
	for _, d := range r.latency {
		slot := int((d - lo) / width)
		if slot >= len(out) {
			slot = len(out) - 1
		}
		out[slot].count++
	}
	return out
}

type jsonBucket struct {
	LeMs  float64 `json:"le_ms"`
	Count int     `json:"count"`
}

type jsonReport struct {
	Workload       string             `json:"workload"`
	Requests       int                `json:"requests"`
	OK             int                `json:"ok"`
	ErrorsTotal    int                `json:"errors_total"`
	Errors         map[string]int     `json:"errors"`
	TotalSeconds   float64            `json:"total_seconds"`
	RequestsPerSec float64            `json:"requests_per_sec"`
	LatencyMs      map[string]float64 `json:"latency_ms"`
	Histogram      []jsonBucket       `json:"histogram"`
	Extra          map[string]int     `json:"extra"`
	Phases         []jsonReport       `json:"phases"`
}

func (r *report) toJSON() jsonReport {
	latency := map[string]float64{
		"average": r.mean() / 1e6,
		"fastest": ms(r.min()),
		"slowest": ms(r.max()),
	}
	for _, p := range percentiles {
		latency[p.name] = ms(r.percentile(p.q))
	}
	histogram := []jsonBucket{}
	for _, b := range r.linearBuckets(histogramRows) {
		histogram = append(histogram, jsonBucket{LeMs: ms(b.le), Count: b.count})
	}
	phases := []jsonReport{}
	for _, p := range r.phases {
		phases = append(phases, p.toJSON())
	}
	return jsonReport{
		Workload:       r.name,
		Requests:       r.ok() + r.failed(),
		OK:             r.ok(),
		ErrorsTotal:    r.failed(),
		Errors:         r.errors,
		TotalSeconds:   r.elapsed.Seconds(),
		RequestsPerSec: r.requestsPerSec(),
		LatencyMs:      latency,
		Histogram:      histogram,
		Extra:          r.extra,
		Phases:         phases,
	}
}

// writeJSON prints the report as one JSON object on one line.
func (r *report) writeJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(r.toJSON())
}

// writeText prints the report as oxetcd-bench's text report (etcd's benchmark's layout).
func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "Summary (%s):\n", r.name)
	fmt.Fprintf(w, "  Total:\t%.4f secs.\n", r.elapsed.Seconds())
	fmt.Fprintf(w, "  Requests:\t%d ok, %d failed\n", r.ok(), r.failed())
	fmt.Fprintf(w, "  Slowest:\t%.4f ms\n", ms(r.max()))
	fmt.Fprintf(w, "  Fastest:\t%.4f ms\n", ms(r.min()))
	fmt.Fprintf(w, "  Average:\t%.4f ms\n", r.mean()/1e6)
	fmt.Fprintf(w, "  Requests/sec:\t%.2f\n", r.requestsPerSec())
	for _, name := range sortedKeys(r.extra) {
		fmt.Fprintf(w, "  %s:\t%d\n", name, r.extra[name])
	}
	if buckets := r.linearBuckets(histogramRows); len(buckets) > 0 {
		peak := 1
		for _, b := range buckets {
			if b.count > peak {
				peak = b.count
			}
		}
		fmt.Fprintf(w, "\nResponse time histogram (ms):\n")
		for _, b := range buckets {
			bar := strings.Repeat("∎", (b.count*barWidth+peak-1)/peak)
			fmt.Fprintf(w, "  %10.4f [%d]\t|%s\n", ms(b.le), b.count, bar)
		}
		fmt.Fprintf(w, "\nLatency distribution:\n")
		for _, p := range percentiles {
			fmt.Fprintf(w, "  %6s in %.4f ms\n", p.name, ms(r.percentile(p.q)))
		}
	}
	if len(r.errors) > 0 {
		fmt.Fprintf(w, "\nErrors:\n")
		for _, message := range sortedKeys(r.errors) {
			fmt.Fprintf(w, "  [%d]\t%s\n", r.errors[message], message)
		}
	}
	for _, p := range r.phases {
		fmt.Fprintln(w)
		p.writeText(w)
	}
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
