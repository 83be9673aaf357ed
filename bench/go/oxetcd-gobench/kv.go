package main

import (
	"context"
	"fmt"
	"math"

	"go.etcd.io/etcd/clientv3"
)

// rng is splitmix64, the generator oxetcd-bench uses: spread, not security.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) below(n int) int { return int(r.next() % uint64(n)) }

// keyValues are oxetcd-bench's keys and value: fixed-size keys numbered offset ..
// offset+space, in decimal, zero padded (key 42 of size 8 is "00000042"), and one value
// of random lowercase letters.
type keyValues struct {
	size, space, offset int
	value               string
}

func newKeyValues(keySize, valSize, space, offset int) (keyValues, error) {
	if keySize < 1 || space < 1 || valSize < 0 || offset < 0 {
		return keyValues{}, fmt.Errorf("--key-size and --key-space-size must be at least 1")
	}
	if keySize < 19 && float64(offset+space) > math.Pow10(keySize) {
		return keyValues{}, fmt.Errorf("--key-offset %d + --key-space-size %d does not fit in --key-size %d",
			offset, space, keySize)
	}
	r := rng(valSize)
	value := make([]byte, valSize)
	for i := range value {
		value[i] = 'a' + byte(r.below(26))
	}
	return keyValues{size: keySize, space: space, offset: offset, value: string(value)}, nil
}

// key is key number offset + n % space.
func (kv keyValues) key(n int) string {
	return fmt.Sprintf("%0*d", kv.size, kv.offset+n%kv.space)
}

func putOps(conns []*clientv3.Client, clients int, kv keyValues, sequential bool) []op {
	ops := make([]op, clients)
	for i := range ops {
		cli, r := conns[i%len(conns)], rng(i)
		ops[i] = func(ctx context.Context, seq int) error {
			n := seq
			if !sequential {
				n = r.below(kv.space)
			}
			_, err := cli.Put(ctx, kv.key(n), kv.value)
			return err
		}
	}
	return ops
}

// rangeArgs is what a range request reads: key (and end), or with random one random
// key of that numbering per request.
type rangeArgs struct {
	key, end     string
	serializable bool
	limit        int64
	keysOnly     bool
	random       *keyValues
}

func rangeOps(conns []*clientv3.Client, clients int, a rangeArgs) []op {
	var opts []clientv3.OpOption
	if a.end != "" {
		opts = append(opts, clientv3.WithRange(a.end))
	}
	if a.serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	if a.limit > 0 {
		opts = append(opts, clientv3.WithLimit(a.limit))
	}
	if a.keysOnly {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	ops := make([]op, clients)
	for i := range ops {
		cli, r := conns[i%len(conns)], rng(i)
		ops[i] = func(ctx context.Context, seq int) error {
			key := a.key
			if a.random != nil {
				key = a.random.key(r.below(a.random.space))
			}
			_, err := cli.Get(ctx, key, opts...)
			return err
		}
	}
	return ops
}

// txnPutOps: each request is one txn of txnOps puts to consecutive keys from a random
// start (distinct, as a txn requires).
func txnPutOps(conns []*clientv3.Client, clients int, kv keyValues, txnOps int) []op {
	ops := make([]op, clients)
	for i := range ops {
		cli, r := conns[i%len(conns)], rng(i)
		ops[i] = func(ctx context.Context, seq int) error {
			first := r.below(kv.space)
			puts := make([]clientv3.Op, txnOps)
			for j := range puts {
				puts[j] = clientv3.OpPut(kv.key(first+j), kv.value)
			}
			_, err := cli.Txn(ctx).Then(puts...).Commit()
			return err
		}
	}
	return ops
}
