package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/clientv3"
	"google.golang.org/grpc"
)

// tlsConfig is the client TLS of the TLS flags, or nil when none is given.
func tlsConfig(o *options) (*tls.Config, error) {
	if o.cacert == "" && o.cert == "" && o.key == "" && !o.insecureSkipTLSVerify {
		return nil, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: o.insecureSkipTLSVerify}
	if o.cacert != "" {
		pem, err := os.ReadFile(o.cacert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", o.cacert)
		}
		cfg.RootCAs = pool
	}
	if (o.cert == "") != (o.key == "") {
		return nil, errors.New("--cert and --key go together")
	}
	if o.cert != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// splitUser splits --user NAME:PASSWORD at the first colon (no prompt for a password).
func splitUser(user string) (name, password string, err error) {
	if user == "" {
		return "", "", nil
	}
	i := strings.IndexByte(user, ':')
	if i < 0 {
		return "", "", errors.New("--user: expected NAME:PASSWORD (oxetcd-gobench does not prompt for a password)")
	}
	if i == 0 {
		return "", "", errors.New("--user: the user name is empty")
	}
	return user[:i], user[i+1:], nil
}

// dial is one clientv3 client, and so one gRPC connection, to endpoint: clientv3's
// defaults (its retries included), authenticated once if a user is given.
func dial(o *options, endpoint string, tc *tls.Config) (*clientv3.Client, error) {
	if tc == nil && strings.HasPrefix(endpoint, "https://") {
		return nil, fmt.Errorf("%s is https: give --cacert (or --insecure-skip-tls-verify)", endpoint)
	}
	name, password, err := splitUser(o.user)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: time.Duration(o.dialTimeout) * time.Second,
		TLS:         tc,
		Username:    name,
		Password:    password,
		// Fail within the dial timeout when the endpoint is down, not at the first request.
		DialOptions: []grpc.DialOption{grpc.WithBlock()},
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %v", endpoint, err)
	}
	return cli, nil
}

// findLeader is the endpoint whose Maintenance.Status says it is the leader.
func findLeader(o *options, endpoints []string, tc *tls.Config) (string, error) {
	for _, ep := range endpoints {
		cli, err := dial(o, ep, tc)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(o.dialTimeout)*time.Second)
		st, err := cli.Status(ctx, ep)
		cancel()
		cli.Close()
		if err != nil {
			return "", fmt.Errorf("Maintenance.Status of %s: %s", ep, errorKey(err))
		}
		if st.Leader != 0 && st.Leader == st.Header.MemberId {
			return ep, nil
		}
	}
	return "", errors.New("no endpoint is the leader")
}

// connect opens --conns clients, round-robin over the endpoints (or all to the leader).
func connect(o *options) ([]*clientv3.Client, error) {
	var endpoints []string
	for _, e := range strings.Split(o.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			endpoints = append(endpoints, e)
		}
	}
	if len(endpoints) == 0 {
		return nil, errors.New("--endpoints is empty")
	}
	tc, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	if o.targetLeader {
		leader, err := findLeader(o, endpoints, tc)
		if err != nil {
			return nil, err
		}
		endpoints = []string{leader}
	}
	conns := make([]*clientv3.Client, 0, o.conns)
	for i := 0; i < o.conns; i++ {
		cli, err := dial(o, endpoints[i%len(endpoints)], tc)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conns = append(conns, cli)
	}
	return conns, nil
}
