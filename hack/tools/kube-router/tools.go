//go:build tools

// Package tools pins kube-router, whose network policy controller (alone:
// --run-firewall, no router, no service proxy) enforces NetworkPolicies on
// hack/cluster's real-mode node.
package tools

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
)
