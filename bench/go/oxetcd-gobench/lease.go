package main

import (
	"context"
	"sync"

	"go.etcd.io/etcd/clientv3"
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// leaseTTL is long enough that no lease expires during a run.
const leaseTTL = 60

// keepAliveOps: each client grants a lease (clientv3's Grant), then sends keep-alives
// for it on its own LeaseKeepAlive stream, one round trip per request, as oxetcd-bench
// does. The stream is etcd's generated stub on the client's own gRPC connection (with
// clientv3's interceptors and auth token): clientv3's Lease API has no single round trip
// on a kept stream (KeepAlive paces itself at a third of the TTL, KeepAliveOnce opens a
// stream per call).
func keepAliveOps(conns []*clientv3.Client, clients int) ([]op, error) {
	ops := make([]op, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range ops {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cli := conns[i%len(conns)]
			grant, err := cli.Grant(context.Background(), leaseTTL)
			if err != nil {
				errs[i] = err
				return
			}
			lease := pb.NewLeaseClient(cli.ActiveConnection())
			var stream pb.Lease_LeaseKeepAliveClient
			ops[i] = func(ctx context.Context, seq int) error {
				if stream == nil {
					s, err := lease.LeaseKeepAlive(ctx)
					if err != nil {
						return err
					}
					stream = s
				}
				if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(grant.ID)}); err != nil {
					return err
				}
				resp, err := stream.Recv()
				if err != nil {
					return err
				}
				if resp.TTL <= 0 {
					return status.Error(codes.NotFound, "lease expired or revoked")
				}
				return nil
			}
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, &runError{rpc: "Lease.LeaseGrant", err: err}
		}
	}
	return ops, nil
}
