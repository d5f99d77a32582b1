//go:build tools

// Package tools pins the etcd commands that hack/cluster builds.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
