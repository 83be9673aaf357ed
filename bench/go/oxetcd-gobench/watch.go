package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// fanoutTimeout is how long one put may take to reach every watcher.
	fanoutTimeout = 30 * time.Second
	// fanoutPoll is how often a put checks whether every watcher has it.
	fanoutPoll = time.Millisecond
	// drainTimeout is how long to wait for the last events after the last put.
	drainTimeout = 10 * time.Second
)

// stamps are when each put was sent, by put number (ns since base, plus one; 0: not yet).
type stamps struct {
	base time.Time
	sent []int64
}

func (s *stamps) now() int64 { return int64(time.Since(s.base)) + 1 }

func (s *stamps) stamp(seq int) { atomic.StoreInt64(&s.sent[seq], s.now()) }

// latency is the time since the put whose number starts value was sent.
func (s *stamps) latency(value []byte) (time.Duration, bool) {
	if len(value) < 8 {
		return 0, false
	}
	seq := binary.BigEndian.Uint64(value)
	if seq >= uint64(len(s.sent)) {
		return 0, false
	}
	sent := atomic.LoadInt64(&s.sent[seq])
	if sent == 0 {
		return 0, false
	}
	return time.Duration(s.now() - sent), true
}

// watchFanout: watchers of one key, spread evenly over streams (one clientv3 Watcher
// each, so one gRPC stream each, round-robin over the connections), created one at a
// time per stream; then putTotal puts, one at a time, each once every watcher has the
// previous one. Every put carries its number in its value's first 8 bytes, so each
// watcher times the delivery from the put's send. The main report is the deliveries;
// its phases the puts (each timed until its last delivery) and the watcher creation.
func watchFanout(o *options, conns []*clientv3.Client, watchers, streams, putTotal, valSize int) (*report, error) {
	if streams < 1 || watchers < 1 || watchers%streams != 0 {
		return nil, errors.New("--watchers must be a positive multiple of --streams")
	}
	if valSize < 8 {
		return nil, errors.New("--val-size must be at least 8 (puts carry their number)")
	}
	kv, err := newKeyValues(8, valSize, 1, 0)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Creation: one op per stream, strided so each creates exactly watchers/streams.
	chans := make([][]clientv3.WatchChan, streams)
	creators := make([]op, streams)
	for s := range creators {
		s, w := s, clientv3.NewWatcher(conns[s%len(conns)])
		defer w.Close()
		creators[s] = func(_ context.Context, seq int) error {
			// Watch returns once the server confirmed the watcher (or failed it).
			ch := w.Watch(ctx, kv.key(0))
			select {
			case resp, ok := <-ch:
				if !ok {
					return status.Error(codes.Unavailable, "watch channel closed at creation")
				}
				if resp.Canceled {
					return status.Error(codes.Aborted, fmt.Sprint("watch canceled: ", resp.Err()))
				}
				return status.Error(codes.Internal, "an event before any put")
			default:
			}
			chans[s] = append(chans[s], ch)
			return nil
		}
	}
	create, err := run("watch-create", "Watch.Watch", creators, plan{total: watchers, strided: true})
	if err != nil {
		return nil, err
	}
	if create.failed() > 0 {
		return nil, fmt.Errorf("creating watchers failed: %v", create.errors)
	}

	st := &stamps{base: time.Now(), sent: make([]int64, putTotal)}
	var received int64
	var mu sync.Mutex
	var readers sync.WaitGroup
	events := newReport("watch-fanout")
	for _, perStream := range chans {
		for _, ch := range perStream {
			readers.Add(1)
			go func(ch clientv3.WatchChan) {
				defer readers.Done()
				var latency []time.Duration
				for got := 0; got < putTotal; {
					resp, ok := <-ch
					if !ok || resp.Canceled {
						break
					}
					for _, ev := range resp.Events {
						if d, ok := st.latency(ev.Kv.Value); ok {
							latency = append(latency, d)
						}
					}
					got += len(resp.Events)
					atomic.AddInt64(&received, int64(len(resp.Events)))
				}
				mu.Lock()
				events.latency = append(events.latency, latency...)
				mu.Unlock()
			}(ch)
		}
	}

	start := time.Now()
	cli := conns[0]
	putter := func(pctx context.Context, seq int) error {
		value := []byte(kv.value)
		binary.BigEndian.PutUint64(value, uint64(seq))
		st.stamp(seq)
		if _, err := cli.Put(pctx, kv.key(seq), string(value)); err != nil {
			return err
		}
		target := int64(seq+1) * int64(watchers)
		deadline := time.Now().Add(fanoutTimeout)
		for atomic.LoadInt64(&received) < target {
			if time.Now().After(deadline) {
				return status.Error(codes.DeadlineExceeded, "a put did not reach every watcher")
			}
			time.Sleep(fanoutPoll)
		}
		return nil
	}
	limit := time.Duration(o.maxSeconds) * time.Second
	put, err := run("watch-fanout-put", "KV.Put", []op{putter}, plan{total: putTotal, limit: limit})
	if err != nil {
		return nil, err
	}
	expected := int64(put.ok()+put.failed()) * int64(watchers)
	deadline := time.Now().Add(drainTimeout)
	for atomic.LoadInt64(&received) < expected && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	readers.Wait()
	events.elapsed = time.Since(start)
	events.finish()
	got := atomic.LoadInt64(&received)
	events.extra["events_expected"] = int(expected)
	events.extra["events_received"] = int(got)
	if got < expected {
		events.errors["events not received"] = int(expected - got)
	}
	events.phases = []*report{put, create}
	return events, nil
}
