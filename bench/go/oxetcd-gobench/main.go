// Command oxetcd-gobench is a load generator for any etcd v3 endpoint (etcd or
// oxetcd) built on etcd 3.4's Go client (clientv3, the client Kubernetes uses), with
// the workloads, flags and report of oxetcd-bench (crates/bench), so the same command
// line measures a server through either client.
//
// Build it in GOPATH mode against Debian's golang-etcd-server-dev: bench/go/build.sh.
//
//	oxetcd-gobench [global flags] COMMAND [flags] [args]
//
// Global flags may also follow the command. Commands: put, range, txn-put,
// watch-fanout, lease-keepalive.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/clientv3"
)

// options are the global flags, named as oxetcd-bench's.
type options struct {
	endpoints             string
	conns, clients, total int
	targetLeader, json    bool
	maxSeconds            int
	dialTimeout           int
	user                  string
	rate                  int
	cacert, cert, key     string
	insecureSkipTLSVerify bool
}

// addGlobal registers the global flags on fs, their current values as defaults (so a
// second flag set, the command's, keeps what the first parsed).
func addGlobal(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.endpoints, "endpoints", o.endpoints, "gRPC endpoints, comma separated, with or without http:// or https://")
	fs.IntVar(&o.conns, "conns", o.conns, "gRPC connections (one clientv3 client each), round-robin over the endpoints")
	fs.IntVar(&o.clients, "clients", o.clients, "concurrent in-flight requests, spread over the connections")
	fs.IntVar(&o.total, "total", o.total, "requests to send")
	fs.BoolVar(&o.targetLeader, "target-leader", o.targetLeader, "send everything to the leader (found with Maintenance.Status)")
	fs.BoolVar(&o.json, "json", o.json, "print one JSON object instead of the text report")
	fs.IntVar(&o.maxSeconds, "max-seconds", o.maxSeconds, "stop sending after this many seconds even if --total is not reached (0: no limit)")
	fs.IntVar(&o.dialTimeout, "dial-timeout", o.dialTimeout, "seconds allowed to connect to an endpoint")
	fs.StringVar(&o.user, "user", o.user, "NAME:PASSWORD: authenticate once per connection (clientv3's Username/Password)")
	fs.IntVar(&o.rate, "rate", o.rate, "requests per second over all clients for put, range, txn-put, lease-keepalive (0: no limit)")
	fs.StringVar(&o.cacert, "cacert", o.cacert, "verify servers with this CA bundle (PEM)")
	fs.StringVar(&o.cert, "cert", o.cert, "client certificate (PEM), with --key")
	fs.StringVar(&o.key, "key", o.key, "private key (PEM) of --cert")
	fs.BoolVar(&o.insecureSkipTLSVerify, "insecure-skip-tls-verify", o.insecureSkipTLSVerify, "do not verify the server's certificate")
}

// parseAll parses flags and positional arguments in any order.
func parseAll(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// kvFlags are the key and value shapes of the writing workloads.
type kvFlags struct{ keySize, valSize, keySpaceSize, keyOffset int }

func (k *kvFlags) add(fs *flag.FlagSet) {
	fs.IntVar(&k.keySize, "key-size", 8, "key size in bytes")
	fs.IntVar(&k.valSize, "val-size", 8, "value size in bytes")
	fs.IntVar(&k.keySpaceSize, "key-space-size", 1, "distinct keys written")
	fs.IntVar(&k.keyOffset, "key-offset", 0, "number of the first key")
}

func (k *kvFlags) keyValues() (keyValues, error) {
	return newKeyValues(k.keySize, k.valSize, k.keySpaceSize, k.keyOffset)
}

const usage = `usage: oxetcd-gobench [global flags] COMMAND [flags] [args]

Commands:
  put               put keys
  range KEY [END]   range over a key (or [KEY, END)); --random-keys N instead of KEY
  txn-put           transactions of --txn-ops puts (one request = one txn)
  watch-fanout      one put at a time to a key with --watchers watchers on --streams streams
  lease-keepalive   keep-alive round trips, one lease and one stream per client

Global flags (before or after the command):
`

// workload is a parsed command, ready to run over the connections.
type workload func(o *options, conns []*clientv3.Client) (*report, error)

// parse reads the command line into the options and the workload to run.
func parse(args []string, o *options, stderr io.Writer) (workload, error) {
	global := flag.NewFlagSet("oxetcd-gobench", flag.ContinueOnError)
	global.SetOutput(stderr)
	addGlobal(global, o)
	global.Usage = func() {
		fmt.Fprint(stderr, usage)
		global.PrintDefaults()
	}
	if err := global.Parse(args); err != nil {
		return nil, err
	}
	if global.NArg() == 0 {
		global.Usage()
		return nil, errors.New("no command")
	}
	command := global.Arg(0)
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addGlobal(fs, o)
	var kv kvFlags
	var w workload
	var positional []string
	limit := func() time.Duration { return time.Duration(o.maxSeconds) * time.Second }
	kvPlan := func() plan { return plan{total: o.total, rate: o.rate, limit: limit()} }
	switch command {
	case "put":
		kv.add(fs)
		sequential := fs.Bool("sequential-keys", false, "write keys 0, 1, 2, ... in order instead of at random")
		w = func(o *options, conns []*clientv3.Client) (*report, error) {
			keys, err := kv.keyValues()
			if err != nil {
				return nil, err
			}
			return run("put", "KV.Put", putOps(conns, o.clients, keys, *sequential), kvPlan())
		}
	case "range":
		consistency := fs.String("consistency", "l", "l: linearizable, s: serializable")
		limitKeys := fs.Int64("limit", 0, "maximum keys per response (0: no limit)")
		keysOnly := fs.Bool("keys-only", false, "return keys without values")
		randomKeys := fs.Int("random-keys", 0, "read one of N keys at random per request, numbered as put's keys")
		randomKeySize := fs.Int("random-key-size", 8, "key size of --random-keys")
		randomKeyOffset := fs.Int("random-key-offset", 0, "number of the first key of --random-keys")
		w = func(o *options, conns []*clientv3.Client) (*report, error) {
			a := rangeArgs{limit: *limitKeys, keysOnly: *keysOnly}
			switch *consistency {
			case "l":
			case "s":
				a.serializable = true
			default:
				return nil, fmt.Errorf("--consistency %q: l or s", *consistency)
			}
			switch {
			case *randomKeys > 0 && len(positional) > 0:
				return nil, errors.New("range: KEY and --random-keys exclude each other")
			case *randomKeys > 0:
				keys, err := newKeyValues(*randomKeySize, 0, *randomKeys, *randomKeyOffset)
				if err != nil {
					return nil, err
				}
				a.random = &keys
			case len(positional) == 1 || len(positional) == 2:
				a.key = positional[0]
				if len(positional) == 2 {
					a.end = positional[1]
				}
			default:
				return nil, errors.New("range: expected KEY [END] or --random-keys N")
			}
			return run("range", "KV.Range", rangeOps(conns, o.clients, a), kvPlan())
		}
	case "txn-put":
		kv.add(fs)
		txnOps := fs.Int("txn-ops", 1, "puts per transaction (distinct keys)")
		w = func(o *options, conns []*clientv3.Client) (*report, error) {
			if *txnOps < 1 || kv.keySpaceSize < *txnOps {
				return nil, fmt.Errorf("--key-space-size (%d) must be at least --txn-ops (%d), which must be at least 1",
					kv.keySpaceSize, *txnOps)
			}
			keys, err := kv.keyValues()
			if err != nil {
				return nil, err
			}
			return run("txn-put", "KV.Txn", txnPutOps(conns, o.clients, keys, *txnOps), kvPlan())
		}
	case "watch-fanout":
		watchers := fs.Int("watchers", 10000, "watchers of the key, spread evenly over the streams")
		streams := fs.Int("streams", 100, "watch streams, spread over the connections")
		putTotal := fs.Int("put-total", 100, "puts, one at a time")
		valSize := fs.Int("val-size", 8, "value size in bytes (at least 8: a put carries its number)")
		w = func(o *options, conns []*clientv3.Client) (*report, error) {
			return watchFanout(o, conns, *watchers, *streams, *putTotal, *valSize)
		}
	case "lease-keepalive":
		w = func(o *options, conns []*clientv3.Client) (*report, error) {
			ops, err := keepAliveOps(conns, o.clients)
			if err != nil {
				return nil, err
			}
			return run("lease-keepalive", "Lease.LeaseKeepAlive", ops, kvPlan())
		}
	default:
		global.Usage()
		return nil, fmt.Errorf("unknown command %q", command)
	}
	var err error
	if positional, err = parseAll(fs, global.Args()[1:]); err != nil {
		return nil, err
	}
	if command != "range" && len(positional) > 0 {
		return nil, fmt.Errorf("%s takes no arguments: %s", command, strings.Join(positional, " "))
	}
	if o.conns < 1 || o.clients < 1 {
		return nil, errors.New("--conns and --clients must be at least 1")
	}
	return w, nil
}

func main() {
	o := &options{endpoints: "127.0.0.1:2379", conns: 1, clients: 1, total: 10000, dialTimeout: 5}
	w, err := parse(os.Args[1:], o, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "oxetcd-gobench:", err)
		os.Exit(2)
	}
	conns, err := connect(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "oxetcd-gobench:", err)
		os.Exit(1)
	}
	r, err := w(o, conns)
	if err != nil {
		fmt.Fprintln(os.Stderr, "oxetcd-gobench:", err)
		os.Exit(1)
	}
	if o.json {
		// A closed pipe (`| head`) is not a failure of the benchmark.
		_ = r.writeJSON(os.Stdout)
	} else {
		r.writeText(os.Stdout)
	}
	if r.ok() == 0 && r.failed() > 0 {
		fmt.Fprintln(os.Stderr, "oxetcd-gobench: every request failed")
		os.Exit(1)
	}
}
