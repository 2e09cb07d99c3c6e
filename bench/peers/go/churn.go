// bench/peers/go/churn.go - W11 (fiber churn, docs/benchmarks.md) on Go's runtime, the
// peer the weft tour prints beside its own W11 figures when a go binary exists.
//
// n goroutines are started and each parks on one channel (closed later); once every one
// of them waits, the channel is closed and all run to completion. Both phases are timed,
// repeated -reps times in one process (as the tour does on one weft scheduler), and
// printed as two RESULT lines in bench/result.hpp's format:
//
//	RESULT go churn_spawn_park workers=<w> <median> ms min=<min> max=<max> reps=<r> n=<n> first=<ms>
//	RESULT go churn_wake_finish workers=<w> <median> ms min=<min> max=<max> reps=<r> n=<n> first=<ms>
//
// Build: go build -o <dir>/weft_go_churn bench/peers/go/churn.go (scripts/bench.sh does).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"
)

func churn(n int) (park, finish time.Duration) {
	gate := make(chan struct{})
	var parked, done sync.WaitGroup
	parked.Add(n)
	done.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			parked.Done()
			<-gate
			done.Done()
		}()
	}
	parked.Wait()
	t1 := time.Now()
	close(gate)
	done.Wait()
	return t1.Sub(t0), time.Since(t1)
}

// format mirrors bench/result.hpp's format_number: at least four significant digits.
func format(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 100000:
		return fmt.Sprintf("%.0f", v)
	case a >= 1000:
		return fmt.Sprintf("%.1f", v)
	case a >= 100:
		return fmt.Sprintf("%.2f", v)
	case a >= 1:
		return fmt.Sprintf("%.3f", v)
	case a >= 0.01:
		return fmt.Sprintf("%.4f", v)
	}
	return fmt.Sprintf("%.6f", v)
}

// first is the first repetition's figure (the one that maps fresh stacks or heap).
func report(workload string, n, workers int, ms []float64) {
	first := ms[0]
	sort.Float64s(ms)
	median := ms[len(ms)/2]
	if len(ms)%2 == 0 {
		median = (ms[len(ms)/2-1] + ms[len(ms)/2]) / 2
	}
	fmt.Printf("RESULT go %s workers=%d %s ms min=%s max=%s reps=%d n=%d first=%s\n", workload,
		workers, format(median), format(ms[0]), format(ms[len(ms)-1]), len(ms), n, format(first))
}

func main() {
	n := flag.Int("n", 100000, "goroutines per repetition")
	reps := flag.Int("reps", 5, "repetitions")
	workers := flag.Int("workers", runtime.NumCPU(), "GOMAXPROCS")
	flag.Parse()
	if *n < 1 || *reps < 1 || *workers < 1 {
		fmt.Fprintln(os.Stderr, "weft_go_churn: -n, -reps and -workers must be positive")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(*workers)
	var park, finish []float64
	for r := 0; r < *reps; r++ {
		p, f := churn(*n)
		park = append(park, float64(p.Microseconds())/1000)
		finish = append(finish, float64(f.Microseconds())/1000)
	}
	report("churn_spawn_park", *n, *workers, park)
	report("churn_wake_finish", *n, *workers, finish)
}
