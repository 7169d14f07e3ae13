package bench

import "context"

func NoisyNeighbor(ctx context.Context, o Options) (*Report, error) { return nil, ErrUnsupported }
func Fairness(ctx context.Context, o Options) (*Report, error)      { return nil, ErrUnsupported }
func Backoff(ctx context.Context, o Options) (*Report, error)       { return nil, ErrUnsupported }
func Limits(ctx context.Context, o Options) (*Report, error)        { return nil, ErrUnsupported }
func Crash(ctx context.Context, o Options) (*Report, error)         { return nil, ErrUnsupported }
