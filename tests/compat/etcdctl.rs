//! etcdctl 3.4.23 against the reference etcd and against oxetcd: the same commands,
//! outputs compared after normalizing what legitimately differs (ids, times).
