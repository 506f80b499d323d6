package rpc

// Limits the external tests check against.
const (
	MaxBigReads  = maxBigReads
	MaxConnCalls = maxConnCalls
	SmallRead    = smallRead
)
