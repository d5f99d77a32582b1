//go:build tools

// Package tools pins grpcurl, the gRPC client (not ours) that the test-runner
// image carries so that test Jobs can report results to the patchgate API.
package tools

import (
	_ "github.com/fullstorydev/grpcurl/cmd/grpcurl"
)
