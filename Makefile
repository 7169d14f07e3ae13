# fairway's everyday commands. Needs only Go (and make); tools are fetched
# through the Go module proxy on first use.

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The race detector needs cgo, that is a C compiler; Go turns cgo off where
# there is none, and then the tests run without -race rather than fail.
RACE := $(if $(filter 1,$(shell $(GO) env CGO_ENABLED)),-race,)

.PHONY: all build run test check bench bench-go bench-compare interop clean

all: build

build:
	$(GO) build -o bin/fairway ./cmd/fairway

run: build
	./bin/fairway serve

test:
ifeq ($(RACE),)
	@echo "note: cgo is off (no C compiler?), so tests run without -race"
endif
	$(GO) test $(RACE) -timeout 15m ./...

check:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Benchmarks: each fairq benchmark at a size that fits it, BENCH_COUNT runs
# each (take medians; the machine is shared). Dispatch benchmarks consume a
# 1,000,000-delivery queue, so they run a fixed count, not a duration.
BENCH_COUNT ?= 5
bench-go:
	$(GO) test -run '^$$' -bench '^BenchmarkEnqueue' -benchtime 2s -count $(BENCH_COUNT) ./fairq/
	$(GO) test -run '^$$' -bench '^BenchmarkDispatch' -benchtime 200000x -count $(BENCH_COUNT) ./fairq/
	$(GO) test -run '^$$' -bench '^BenchmarkRecovery' -benchtime 1x -count $(BENCH_COUNT) ./fairq/
	$(GO) test -run '^$$' -bench '^Benchmark(Lookup|Authenticate|Import1000Domains)' -count $(BENCH_COUNT) ./tenant/
	$(GO) test -run '^$$' -bench '^Benchmark(EndToEnd|SignRSA2048)' -benchtime 3000x -count $(BENCH_COUNT) ./relay/

# The load benchmark suite (package bench, cmd/fairway-bench): every
# scenario at its short size against the built binary, measured over SMTP;
# tables on stdout, JSON in bench-results/. BENCH_ARGS=--full for the issue's
# sizes (long). bench-compare runs SCENARIO on fairway and then on a private
# Postfix instance (bench/postfix.sh, needs Debian's postfix package and
# root) and prints both rows and their ratio.
BENCH_ARGS ?=
SCENARIO   ?= throughput
bench: build
	$(GO) run ./cmd/fairway-bench --fairway-bin bin/fairway $(BENCH_ARGS)

bench-compare: build
	$(GO) run ./cmd/fairway-bench --fairway-bin bin/fairway --scenario $(SCENARIO) --compare postfix $(BENCH_ARGS)

# Interop tests drive the built binary with outside clients (swaks, curl,
# dkimpy, dnslib), installing their Debian packages if missing.
interop: build
	cmd/fairway/testdata/interop/run.sh bin/fairway

clean:
	rm -rf bin
