// bboltcheck: the reference side of oxetcd-bbolt's compatibility tests.
//
//	bboltcheck dump PATH        open PATH read-only with the real bbolt, run tx.Check(),
//	                            print the meta and every bucket's entries (hex)
//	bboltcheck gen PATH SEED [nofreelist]
//	                            write a database with random buckets (nested, inline,
//	                            large values, deletes so the freelist is not empty);
//	                            with nofreelist, as etcd runs bbolt (NoFreelistSync)
//
// Run in GOPATH mode (GOPATH=/usr/share/gocode GO111MODULE=off) against Debian's
// golang-github-coreos-bbolt-dev.
package main

import (
	"encoding/hex"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: bboltcheck dump PATH | gen PATH SEED [nofreelist]")
	}
	switch os.Args[1] {
	case "dump":
		dump(os.Args[2])
	case "gen":
		if len(os.Args) != 4 && !(len(os.Args) == 5 && os.Args[4] == "nofreelist") {
			fail("usage: bboltcheck gen PATH SEED [nofreelist]")
		}
		seed, err := strconv.ParseInt(os.Args[3], 10, 64)
		check(err)
		gen(os.Args[2], seed, len(os.Args) == 5)
	default:
		fail("unknown command " + os.Args[1])
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "bboltcheck:", msg)
	os.Exit(1)
}

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func dump(path string) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	check(err)
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var problems []string
		for e := range tx.Check() {
			problems = append(problems, e.Error())
		}
		if len(problems) > 0 {
			return fmt.Errorf("tx.Check: %s", strings.Join(problems, "; "))
		}
		fmt.Printf("pagesize %d\n", db.Info().PageSize)
		fmt.Printf("txid %d\n", tx.ID())
		fmt.Printf("size %d\n", tx.Size())
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return dumpBucket(hex.EncodeToString(name), b)
		})
	})
	check(err)
}

func dumpBucket(path string, b *bolt.Bucket) error {
	fmt.Printf("bucket %s seq %d\n", path, b.Sequence())
	var last []byte
	return b.ForEach(func(k, v []byte) error {
		if last != nil && string(last) >= string(k) {
			return fmt.Errorf("bucket %s: keys out of order: %x after %x", path, k, last)
		}
		last = append(last[:0], k...)
		if child := b.Bucket(k); child != nil {
			return dumpBucket(path+"/"+hex.EncodeToString(k), child)
		}
		fmt.Printf("kv %s %s %s\n", path, hex.EncodeToString(k), hex.EncodeToString(v))
		return nil
	})
}

func gen(path string, seed int64, noFreelist bool) {
	r := rand.New(rand.NewSource(seed))
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: noFreelist})
	check(err)
	defer db.Close()

	randBytes := func(min, max int) []byte {
		b := make([]byte, min+r.Intn(max-min+1))
		r.Read(b)
		return b
	}
	// Several transactions: fill, then delete some keys and buckets so pages are freed.
	for round := 0; round < 4; round++ {
		err := db.Update(func(tx *bolt.Tx) error {
			for i := 0; i < 6; i++ {
				name := []byte(fmt.Sprintf("bucket-%d", r.Intn(8)))
				b, err := tx.CreateBucketIfNotExists(name)
				if err != nil {
					return err
				}
				if err := b.SetSequence(uint64(r.Intn(1000))); err != nil {
					return err
				}
				n := r.Intn(400)
				if i == 0 {
					n = 2 // a small bucket that stays inline
				}
				for j := 0; j < n; j++ {
					v := randBytes(0, 200)
					if r.Intn(50) == 0 {
						v = randBytes(4096, 20000) // spans several pages
					}
					if err := b.Put(randBytes(1, 40), v); err != nil {
						return err
					}
				}
				// Nested buckets, some inline (few small keys), some not.
				if r.Intn(2) == 0 {
					nb, err := b.CreateBucketIfNotExists([]byte(fmt.Sprintf("nested-%d", r.Intn(3))))
					if err != nil {
						return err
					}
					for j := 0; j < r.Intn(300); j++ {
						if err := nb.Put(randBytes(1, 20), randBytes(0, 100)); err != nil {
							return err
						}
					}
					if r.Intn(2) == 0 {
						deep, err := nb.CreateBucketIfNotExists([]byte("deep"))
						if err != nil {
							return err
						}
						if err := deep.Put([]byte("k"), []byte("v")); err != nil {
							return err
						}
					}
				}
			}
			// An empty bucket.
			_, err := tx.CreateBucketIfNotExists([]byte("empty"))
			return err
		})
		check(err)
		err = db.Update(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				c := b.Cursor()
				for k, v := c.First(); k != nil; k, v = c.Next() {
					if v != nil && r.Intn(3) == 0 {
						if err := c.Delete(); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
		check(err)
		if round == 2 {
			err = db.Update(func(tx *bolt.Tx) error {
				name := []byte(fmt.Sprintf("bucket-%d", r.Intn(8)))
				if tx.Bucket(name) != nil {
					return tx.DeleteBucket(name)
				}
				return nil
			})
			check(err)
		}
	}
}
