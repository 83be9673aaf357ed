package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// op sends one request; seq is its number in the run (0..total).
type op func(ctx context.Context, seq int) error

// plan says how many requests a run sends and how they are handed out.
type plan struct {
	total int
	// strided: client i of n sends requests i, i+n, i+2n, ... (exact per-client
	// counts); otherwise whichever client is free takes the next one.
	strided bool
	rate    int           // requests per second over all clients; 0: no limit
	limit   time.Duration // stop taking new requests after this long; 0: none
}

// runError is a run stopped because the server does not implement the RPC.
type runError struct {
	rpc string
	err error
}

func (e *runError) Error() string { return fmt.Sprintf("%s: %s", e.rpc, errorKey(e.err)) }

// errorCode is the gRPC code of err: clientv3 returns some errors as its own types.
func errorCode(err error) (codes.Code, string) {
	var etcdErr rpctypes.EtcdError
	if errors.As(err, &etcdErr) {
		return etcdErr.Code(), etcdErr.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return codes.DeadlineExceeded, err.Error()
	}
	if errors.Is(err, context.Canceled) {
		return codes.Canceled, err.Error()
	}
	if s, ok := status.FromError(err); ok {
		return s.Code(), s.Message()
	}
	return codes.Unknown, err.Error()
}

// errorKey is how failures are counted: "Code: message", as oxetcd-bench counts them.
func errorKey(err error) string {
	code, message := errorCode(err)
	return fmt.Sprintf("%s: %s", code, message)
}

// run sends plan.total requests with the ops, one goroutine per op (so at most
// len(ops) requests are in flight), and times each.
func run(name, rpc string, ops []op, p plan) (*report, error) {
	if len(ops) == 0 {
		return nil, errors.New("no clients")
	}
	var (
		next    int64 = -1
		aborted int32
		abort   error
		mu      sync.Mutex
		wg      sync.WaitGroup
		pacer   <-chan time.Time
	)
	if p.rate > 0 {
		// A Ticker drops the ticks nobody takes: a stalled server gets no burst after.
		ticker := time.NewTicker(time.Second / time.Duration(p.rate))
		defer ticker.Stop()
		pacer = ticker.C
	}
	start := time.Now()
	var deadline time.Time
	if p.limit > 0 {
		deadline = start.Add(p.limit)
	}
	r := newReport(name)
	ctx := context.Background()
	for i, o := range ops {
		wg.Add(1)
		go func(i int, o op) {
			defer wg.Done()
			var latency []time.Duration
			failures := map[string]int{}
			for round := 0; ; round++ {
				seq := i + round*len(ops)
				if !p.strided {
					seq = int(atomic.AddInt64(&next, 1))
				}
				late := !deadline.IsZero() && time.Now().After(deadline)
				if seq >= p.total || late || atomic.LoadInt32(&aborted) != 0 {
					break
				}
				if pacer != nil {
					<-pacer
				}
				t0 := time.Now()
				err := o(ctx, seq)
				took := time.Since(t0)
				if err == nil {
					latency = append(latency, took)
					continue
				}
				if code, _ := errorCode(err); code == codes.Unimplemented {
					if atomic.CompareAndSwapInt32(&aborted, 0, 1) {
						abort = err
					}
					break
				}
				failures[errorKey(err)]++
			}
			mu.Lock()
			defer mu.Unlock()
			r.latency = append(r.latency, latency...)
			for k, v := range failures {
				r.errors[k] += v
			}
		}(i, o)
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	r.finish()
	if abort != nil {
		return nil, &runError{rpc: rpc, err: abort}
	}
	return r, nil
}
